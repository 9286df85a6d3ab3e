-- the group must exist
CREATE SAMPLE SPEC s FROM impressions JOIN user_profiles LABEL clicked
AS SELECT clicked;
