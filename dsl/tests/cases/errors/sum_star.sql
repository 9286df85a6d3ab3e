-- only COUNT takes *
CREATE FEATURE GROUP g ON user FROM impressions
AS SELECT SUM(*) OVER 1 DAY AS s;
