-- an entity defined twice
CREATE ENTITY user KEY (user_id STRING);
