-- window aggregates need AS name
CREATE FEATURE GROUP g ON user FROM impressions
AS SELECT SUM(dwell) OVER 1 DAY;
