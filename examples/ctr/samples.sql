-- The training sample spec and the model trained on it.

CREATE SAMPLE SPEC ctr
    FROM impressions
    JOIN user_profile
    JOIN item_stats
    JOIN user_activity
    LABEL clicked
AS SELECT
    request_id, user_id, item_id, ts, clicked,
    age, city, score,
    ctr, category,
    user_clicks_7d, user_impr_1d,
    -- transforms
    bucketize(age, 18, 25, 35, 50, 65) AS age_bucket,
    hash_bucket(COALESCE(city, ''), 1024) AS city_bucket,
    log1p(clip(COALESCE(ctr, 0.0), 0.0, 1.0) * 100) AS ctr_log,
    CASE WHEN user_impr_1d = 0 THEN 0.0
         ELSE CAST(user_clicks_7d AS DOUBLE) / user_impr_1d END AS click_rate;

CREATE MODEL ctr_model USING ctr;
