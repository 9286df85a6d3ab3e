-- the window is N UNIT only
CREATE FEATURE GROUP activity_2 ON user FROM impressions
AS SELECT COUNT(*) OVER 1 DAY ROWS AS n;
