-- a user×item cross feature joined on both keys
CREATE FEATURE GROUP user_item_clicks ON user_item FROM impressions
AS SELECT COUNT(*) FILTER (WHERE clicked) OVER 30 DAYS AS ui_clicks_30d;
CREATE SAMPLE SPEC s FROM impressions JOIN user_item_clicks ON (user_id, item_id) LABEL clicked
AS SELECT request_id, clicked, ui_clicks_30d;
