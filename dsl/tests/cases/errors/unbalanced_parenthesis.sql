-- a missing closing parenthesis
CREATE FEATURE GROUP profile_2 ON user FROM user_profile
AS SELECT (age + 1 AS older;
