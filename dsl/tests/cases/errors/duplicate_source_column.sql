-- a column declared twice
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP, user_id STRING)
EVENT TIME ts KAFKA TOPIC 'clicks';
