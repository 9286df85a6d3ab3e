-- CREATE of something fstore does not define
CREATE TABLE shop (shop_id STRING);
