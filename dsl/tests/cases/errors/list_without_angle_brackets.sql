-- LIST needs its element type in <>
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP, tags LIST STRING)
EVENT TIME ts KAFKA TOPIC 'clicks';
