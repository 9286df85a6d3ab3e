-- a and b reference each other
CREATE SAMPLE SPEC s FROM impressions LABEL clicked
AS SELECT clicked, b + 1 AS a, a * 2 AS b;
