-- model inputs default to the spec's features and transforms
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile JOIN user_activity LABEL clicked
AS SELECT request_id, clicked, age, user_clicks_7d, log1p(user_clicks_7d) AS clicks_log;
CREATE MODEL m USING s;
