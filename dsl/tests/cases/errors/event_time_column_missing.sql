-- the event time column must exist
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP)
EVENT TIME event_ts KAFKA TOPIC 'clicks';
