-- row features computed from the source row
CREATE FEATURE GROUP profile_derived ON user FROM user_profile TTL 30 DAYS
AS SELECT upper(city) AS city_upper,
          COALESCE(score, 0.0) AS score_or_zero,
          CASE WHEN age >= 18 THEN 'adult' ELSE 'minor' END AS age_class,
          CAST(age AS DOUBLE) / 10 AS age_decades,
          age * 12 AS age_months;
