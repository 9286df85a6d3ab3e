-- age comes from both joins
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile AS p1 JOIN user_profile AS p2 ON (user_id) LABEL clicked
AS SELECT clicked, age;
