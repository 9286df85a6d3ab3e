-- expressions need a name
CREATE FEATURE GROUP g ON user FROM user_profile AS SELECT age * 2;
