-- an operator without its right side
CREATE FEATURE GROUP profile_2 ON user FROM user_profile
AS SELECT age + AS older;
