-- user_item has two key columns
CREATE FEATURE GROUP g ON user_item FROM impressions KEY (user_id)
AS SELECT COUNT(*) OVER 1 DAY AS n;
