-- EVENT TIME names a column
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP)
EVENT TIME KAFKA TOPIC 'clicks';
