-- windows are whole numbers of a unit
CREATE FEATURE GROUP activity_2 ON user FROM impressions
AS SELECT COUNT(*) OVER 1.5 DAYS AS n;
