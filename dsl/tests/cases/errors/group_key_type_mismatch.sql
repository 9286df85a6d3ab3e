-- item keys are INT64, user_id is STRING
CREATE FEATURE GROUP g ON item FROM impressions KEY (user_id)
AS SELECT COUNT(*) OVER 1 DAY AS n;
