-- NULL keys join nothing (not even another NULL) and see empty windows; events and rows
-- without an event time make no sample and no state; a composite key needs both parts.
CREATE ENTITY pair KEY (user_id STRING, item_id INT64);
CREATE SOURCE events (event_id INT64, user_id STRING, item_id INT64, ts TIMESTAMP, label BOOLEAN)
    EVENT TIME ts KAFKA TOPIC 'events';
CREATE SOURCE stats (user_id STRING, item_id INT64, ts TIMESTAMP, views INT64) EVENT TIME ts KAFKA TOPIC 'stats';
CREATE FEATURE GROUP st ON pair FROM stats AS SELECT views;
CREATE FEATURE GROUP act ON pair FROM events AS SELECT COUNT(*) OVER 1 HOUR AS seen_1h;
CREATE SAMPLE SPEC s FROM events JOIN st JOIN act LABEL label
AS SELECT event_id, user_id, item_id, ts, label, views, seen_1h, COALESCE(views, 0) + seen_1h AS total;
