-- two joins under one name
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile JOIN user_activity AS user_profile LABEL clicked
AS SELECT clicked;
