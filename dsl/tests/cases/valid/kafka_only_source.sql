-- a stream-only source
CREATE SOURCE page_views (user_id STRING, ts TIMESTAMP, url STRING)
EVENT TIME ts KAFKA TOPIC 'page-views.v1';
