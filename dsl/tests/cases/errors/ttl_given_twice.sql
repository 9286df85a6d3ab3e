-- each clause at most once
CREATE FEATURE GROUP profile_2 ON user FROM user_profile TTL 1 DAY TTL 2 DAYS
AS SELECT age;
