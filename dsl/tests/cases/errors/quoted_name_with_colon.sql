-- names become online keys, so ':' is not allowed
CREATE ENTITY "shop:eu" KEY (shop_id STRING);
