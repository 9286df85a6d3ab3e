-- buyer and seller both joined to the user profile under aliases
CREATE SOURCE orders (order_id INT64, buyer_id STRING, seller_id STRING, ts TIMESTAMP, returned BOOLEAN)
EVENT TIME ts BATCH PARQUET 'orders/' KAFKA TOPIC 'orders';
CREATE SAMPLE SPEC returns FROM orders
    JOIN user_profile AS buyer ON (buyer_id)
    JOIN user_profile AS seller ON seller_id
    LABEL returned
AS SELECT order_id, returned, buyer.age AS buyer_age, seller.age AS seller_age,
          buyer.city = seller.city AS same_city;
