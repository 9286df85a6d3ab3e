-- item keys are INT64, user_id is STRING
CREATE SAMPLE SPEC s FROM impressions JOIN item_stats ON (user_id) LABEL clicked
AS SELECT clicked, ctr;
