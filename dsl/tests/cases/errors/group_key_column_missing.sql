-- KEY names source columns
CREATE FEATURE GROUP g ON user FROM impressions KEY (uid)
AS SELECT COUNT(*) OVER 1 DAY AS n;
