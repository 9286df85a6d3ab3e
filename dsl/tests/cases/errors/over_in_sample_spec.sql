-- windows belong in feature groups
CREATE SAMPLE SPEC s FROM impressions LABEL clicked
AS SELECT clicked, COUNT(*) OVER 1 DAY AS n;
