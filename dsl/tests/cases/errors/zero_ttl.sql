-- a TTL must be positive
CREATE FEATURE GROUP profile_2 ON user FROM user_profile TTL 0 DAYS
AS SELECT age;
