-- the entity key is not a feature
CREATE FEATURE GROUP g ON user FROM user_profile
AS SELECT user_id, age;
