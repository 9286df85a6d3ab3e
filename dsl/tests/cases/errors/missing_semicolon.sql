-- statements end with ;
CREATE ENTITY shop KEY (shop_id STRING)
CREATE ENTITY seller KEY (seller_id STRING);
