-- hash_bucket takes STRING or INT64
CREATE FEATURE GROUP g ON user FROM user_profile
AS SELECT hash_bucket(score, 10) AS b;
