-- SUM takes numbers
CREATE FEATURE GROUP g ON user FROM user_profile
AS SELECT SUM(city) OVER 1 DAY AS s;
