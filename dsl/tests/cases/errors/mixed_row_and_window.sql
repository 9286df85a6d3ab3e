-- row features and window aggregates in one group
CREATE FEATURE GROUP g ON user FROM impressions
AS SELECT COUNT(*) OVER 1 DAY AS n, dwell;
