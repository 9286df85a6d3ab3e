-- the batch location is BATCH PARQUET 'path'
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP)
EVENT TIME ts BATCH 'data/clicks.parquet';
