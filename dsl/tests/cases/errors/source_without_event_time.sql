-- every source has an event time
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP) KAFKA TOPIC 'clicks';
