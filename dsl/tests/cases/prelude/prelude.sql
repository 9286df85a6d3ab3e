-- Shared definitions that every single-file case is compiled with.
CREATE ENTITY user KEY (user_id STRING);
CREATE ENTITY item KEY (item_id INT64);
CREATE ENTITY user_item KEY (user_id STRING, item_id INT64);

CREATE SOURCE impressions (
    request_id INT64,
    user_id STRING,
    item_id INT64,
    ts TIMESTAMP,
    clicked BOOLEAN,
    dwell DOUBLE,
    position INT64,
    tags LIST<STRING>
)
EVENT TIME ts
BATCH PARQUET 'data/impressions/*.parquet'
KAFKA TOPIC 'impressions';

CREATE SOURCE user_profile (user_id STRING, ts TIMESTAMP, age INT64, city STRING, score DOUBLE)
EVENT TIME ts BATCH PARQUET 'data/user_profile.parquet' KAFKA TOPIC 'user_profile';

CREATE SOURCE item_stats (item_id INT64, ts TIMESTAMP, ctr DOUBLE, category STRING)
EVENT TIME ts BATCH PARQUET 'data/item_stats.parquet';

CREATE FEATURE GROUP user_profile ON user FROM user_profile TTL 30 DAYS
AS SELECT age, city, score;

CREATE FEATURE GROUP item_stats ON item FROM item_stats TTL 7 DAYS
AS SELECT ctr, category;

CREATE FEATURE GROUP user_activity ON user FROM impressions
AS SELECT
    COUNT(*) FILTER (WHERE clicked) OVER 7 DAYS AS user_clicks_7d,
    COUNT(*) OVER 1 DAY AS user_impr_1d;
