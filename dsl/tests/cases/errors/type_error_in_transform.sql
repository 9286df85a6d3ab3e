-- log1p of a STRING
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL clicked
AS SELECT clicked, log1p(city) AS l;
