-- literals of every kind in expressions
CREATE SAMPLE SPEC s FROM impressions LABEL clicked
AS SELECT clicked, position + 9007199254740993 AS big, dwell * 1.5e3 AS scaled, 'é' AS accent, TRUE AS always, CAST(NULL AS DOUBLE) AS nothing_yet;
