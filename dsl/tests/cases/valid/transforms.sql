-- the fstore functions and string functions
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile JOIN item_stats LABEL clicked
AS SELECT clicked,
          bucketize(age, 18, 30, 45, 60) AS age_bucket,
          bucketize(score, 0.5, 1.5) AS score_bucket,
          hash_bucket(city, 100) AS city_hash,
          hash_bucket(item_id, 1000) AS item_hash,
          log1p(dwell) AS dwell_log,
          clip(position, 0, 10) AS position_clipped,
          clip(ctr, 0.0, 0.5) AS ctr_clipped,
          lower(category) AS category_lower,
          concat(city, '/', category) AS city_category,
          length(city) AS city_len,
          substr(category, 1, 3) AS category_prefix;
