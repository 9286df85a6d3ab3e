-- the features follow AS SELECT
CREATE FEATURE GROUP profile_2 ON user FROM user_profile TTL 1 DAY
SELECT age;
