-- the source must exist
CREATE FEATURE GROUP g ON user FROM user_profiles AS SELECT age;
