-- the location is a quoted string
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP)
EVENT TIME ts BATCH PARQUET data_clicks;
