-- Feature groups: the features of one entity, stored together as one online value.

-- Each profile row replaces the user's features; older than 30 days means unknown.
CREATE FEATURE GROUP user_profile
    ON user FROM user_profile
    TTL 30 DAYS
AS SELECT age, city, score;

CREATE FEATURE GROUP item_stats
    ON item FROM item_stats
    TTL 7 DAYS
AS SELECT ctr, category;

-- Sliding windows over the user's impressions in [t - w, t): an event never sees itself.
CREATE FEATURE GROUP user_activity
    ON user FROM impressions
AS SELECT
    COUNT(*) FILTER (WHERE clicked) OVER 7 DAYS AS user_clicks_7d,
    COUNT(*) OVER 1 DAY AS user_impr_1d;
