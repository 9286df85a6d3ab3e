-- windows and TTLs run over a TIMESTAMP column, not an INT64
CREATE SOURCE clicks (user_id STRING, ts INT64)
EVENT TIME ts KAFKA TOPIC 'clicks';
