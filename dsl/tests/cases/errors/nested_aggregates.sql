-- aggregates cannot be nested
CREATE FEATURE GROUP g ON user FROM impressions
AS SELECT MAX(COUNT(dwell)) OVER 1 DAY AS n;
