-- samples must carry their label
CREATE SAMPLE SPEC s FROM impressions LABEL clicked
AS SELECT request_id;
