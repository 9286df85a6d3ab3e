-- entity keys need the KEY keyword
CREATE ENTITY shop (shop_id STRING);
