CREATE ENTITY shop KEY (shop_id INT64);
