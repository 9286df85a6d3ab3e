-- the group has no such feature
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL clicked
AS SELECT clicked, user_profile.height;
