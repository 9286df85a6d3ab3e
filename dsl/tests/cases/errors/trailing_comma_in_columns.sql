-- a trailing comma before the closing parenthesis
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP,)
EVENT TIME ts KAFKA TOPIC 'clicks';
