-- an untyped NULL has no fstore type
CREATE SAMPLE SPEC s FROM impressions LABEL clicked
AS SELECT clicked, NULL AS nothing;
