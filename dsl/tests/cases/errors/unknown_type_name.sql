-- INT32 is not an fstore type
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP, n INT32)
EVENT TIME ts KAFKA TOPIC 'clicks';
