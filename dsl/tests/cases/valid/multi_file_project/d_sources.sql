CREATE SOURCE visits (visit_id INT64, shop_id INT64, ts TIMESTAMP, bought BOOLEAN, revenue DOUBLE)
EVENT TIME ts BATCH PARQUET 'visits.parquet' KAFKA TOPIC 'visits';
