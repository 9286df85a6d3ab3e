-- Window aggregates over [t - w, t): the lower bound inclusive, rows at the event's own time
-- left out (the event itself among them); every aggregate, with and without FILTER; empty
-- windows give COUNT 0 and NULL otherwise; doubles summed in fold order.
CREATE ENTITY user KEY (user_id STRING);
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP, amount DOUBLE, n INT64, tag STRING, ok BOOLEAN)
    EVENT TIME ts KAFKA TOPIC 'clicks';
CREATE FEATURE GROUP w ON user FROM clicks
AS SELECT
    COUNT(*) OVER 10 SECONDS AS c10,
    COUNT(*) FILTER (WHERE ok) OVER 10 SECONDS AS c10_ok,
    COUNT(amount) OVER 1 MINUTE AS ca,
    SUM(amount) OVER 1 MINUTE AS sa,
    SUM(n) FILTER (WHERE n > 1) OVER 1 MINUTE AS sn,
    AVG(n) OVER 10 SECONDS AS an,
    MIN(tag) OVER 1 MINUTE AS tmin,
    MAX(amount) OVER 1 MINUTE AS amax,
    LAST(tag) OVER 10 SECONDS AS tlast;
CREATE SAMPLE SPEC s FROM clicks JOIN w LABEL ok
AS SELECT user_id, ts, ok, amount, c10, c10_ok, ca, sa, sn, an, tmin, amax, tlast;
