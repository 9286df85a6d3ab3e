-- a string without its closing quote
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP)
EVENT TIME ts KAFKA TOPIC 'clicks;
