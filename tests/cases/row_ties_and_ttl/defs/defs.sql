-- A row group's as-of pick: the latest row at or before the event (inclusive), ties by TIE
-- BREAK then by feature values, NULL lowest; a row exactly the TTL old still joins, a
-- microsecond more does not.
CREATE ENTITY user KEY (user_id STRING);
CREATE SOURCE events (event_id INT64, user_id STRING, ts TIMESTAMP, label BOOLEAN) EVENT TIME ts KAFKA TOPIC 'events';
CREATE SOURCE profile (user_id STRING, ts TIMESTAMP, seq INT64, score DOUBLE, city STRING)
    EVENT TIME ts KAFKA TOPIC 'profile';
CREATE FEATURE GROUP p ON user FROM profile TTL 10 SECONDS TIE BREAK (seq)
AS SELECT score, city, upper(city) AS city_upper;
CREATE SAMPLE SPEC s FROM events JOIN p LABEL label
AS SELECT event_id, user_id, ts, label, score, city, city_upper,
          COALESCE(score, -1.0) * 2 AS score2;
