-- a group at version 3
CREATE FEATURE GROUP profile_v3 ON user FROM user_profile TTL 30 DAYS VERSION 3 AS SELECT age, city;
