-- two features named age
CREATE FEATURE GROUP g ON user FROM user_profile
AS SELECT age, score AS age;
