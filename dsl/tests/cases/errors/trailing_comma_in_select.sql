-- an empty item after the last comma
CREATE FEATURE GROUP profile_2 ON user FROM user_profile
AS SELECT age, city,;
