-- MEDIAN is not a window aggregate
CREATE FEATURE GROUP g ON user FROM impressions
AS SELECT MEDIAN(dwell) OVER 1 DAY AS m;
