-- expressions see one row; no subqueries
CREATE FEATURE GROUP g ON user FROM user_profile
AS SELECT (SELECT 1) AS one;
