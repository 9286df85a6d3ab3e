-- INT64 plus STRING
CREATE FEATURE GROUP g ON user FROM user_profile AS SELECT age + city AS x;
