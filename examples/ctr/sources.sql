-- Sources: timestamped rows, read from Parquet in batch and from Kafka (JSON) in streaming.

CREATE SOURCE impressions (
    request_id INT64,
    user_id    STRING,
    item_id    INT64,
    ts         TIMESTAMP,
    clicked    BOOLEAN
)
EVENT TIME ts
BATCH PARQUET 'data/impressions.parquet'
KAFKA TOPIC 'impressions';

CREATE SOURCE user_profile (
    user_id STRING,
    ts      TIMESTAMP,
    age     INT64,
    city    STRING,
    score   DOUBLE
)
EVENT TIME ts
BATCH PARQUET 'data/user_profile.parquet'
KAFKA TOPIC 'user_profile';

CREATE SOURCE item_stats (
    item_id  INT64,
    ts       TIMESTAMP,
    ctr      DOUBLE,
    category STRING
)
EVENT TIME ts
BATCH PARQUET 'data/item_stats.parquet'
KAFKA TOPIC 'item_stats';
