-- a typo in a column name
CREATE FEATURE GROUP g ON user FROM user_profile AS SELECT agee;
