-- Entities: what features describe.
CREATE ENTITY user KEY (user_id STRING);
CREATE ENTITY item KEY (item_id INT64);
