-- a typo in a feature name
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL clicked
AS SELECT clicked, agee;
