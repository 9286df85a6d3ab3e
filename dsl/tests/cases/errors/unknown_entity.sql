-- the entity must exist
CREATE FEATURE GROUP g ON usr FROM user_profile AS SELECT age;
