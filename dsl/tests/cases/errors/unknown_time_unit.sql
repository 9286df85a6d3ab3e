-- FORTNIGHTS is not a time unit
CREATE FEATURE GROUP profile_2 ON user FROM user_profile TTL 2 FORTNIGHTS
AS SELECT age;
