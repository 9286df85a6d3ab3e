-- the qualifier is a join alias or the event source
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL clicked
AS SELECT clicked, profile.age;
