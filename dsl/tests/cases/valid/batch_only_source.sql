-- a batch-only source with a glob
CREATE SOURCE page_views (user_id STRING, ts TIMESTAMP, url STRING)
EVENT TIME ts BATCH PARQUET '/data/page_views/dt=*/*.parquet';
