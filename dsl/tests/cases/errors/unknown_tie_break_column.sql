-- TIE BREAK names source columns
CREATE FEATURE GROUP g ON user FROM user_profile TIE BREAK (version)
AS SELECT age;
