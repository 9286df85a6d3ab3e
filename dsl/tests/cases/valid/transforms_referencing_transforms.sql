-- transforms may use other transforms, in any order
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL clicked
AS SELECT clicked, log1p(age_clipped) AS age_log, clip(age, 0, 100) AS age_clipped, age_log * 2 AS age_log2;
