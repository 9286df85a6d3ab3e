-- Doubles compared and carried bit for bit: NaN, ±∞, -0.0, subnormals; MIN and MAX in IEEE
-- total order; sums in fold order.
CREATE ENTITY item KEY (item_id INT64);
CREATE SOURCE events (event_id INT64, item_id INT64, ts TIMESTAMP, label BOOLEAN) EVENT TIME ts KAFKA TOPIC 'events';
CREATE SOURCE prices (item_id INT64, ts TIMESTAMP, price DOUBLE) EVENT TIME ts KAFKA TOPIC 'prices';
CREATE FEATURE GROUP latest ON item FROM prices AS SELECT price;
CREATE FEATURE GROUP agg ON item FROM prices
AS SELECT MIN(price) OVER 1 DAY AS pmin, MAX(price) OVER 1 DAY AS pmax,
          SUM(price) OVER 1 DAY AS psum, AVG(price) OVER 1 DAY AS pavg;
CREATE SAMPLE SPEC s FROM events JOIN latest JOIN agg LABEL label
AS SELECT event_id, item_id, ts, label, price, pmin, pmax, psum, pavg;
