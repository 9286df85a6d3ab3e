-- versions start at 1
CREATE FEATURE GROUP profile_2 ON user FROM user_profile VERSION 0
AS SELECT age;
