-- user_item has two key columns
CREATE FEATURE GROUP ui ON user_item FROM impressions
AS SELECT COUNT(*) OVER 7 DAYS AS n;
CREATE SAMPLE SPEC s FROM impressions JOIN ui ON (user_id) LABEL clicked
AS SELECT clicked, n;
