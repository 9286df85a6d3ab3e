-- random() would make batch and stream differ
CREATE FEATURE GROUP g ON user FROM user_profile
AS SELECT random() AS r;
