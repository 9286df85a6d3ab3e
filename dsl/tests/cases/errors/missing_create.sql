-- a statement must start with CREATE
ENTITY shop KEY (shop_id STRING);
