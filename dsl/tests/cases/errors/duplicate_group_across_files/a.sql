-- standalone: the same group in two files
CREATE ENTITY user KEY (user_id STRING);
CREATE SOURCE p (user_id STRING, ts TIMESTAMP, age INT64) EVENT TIME ts KAFKA TOPIC 'p';
CREATE FEATURE GROUP profile ON user FROM p AS SELECT age;
