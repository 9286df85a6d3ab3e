CREATE SAMPLE SPEC shop_samples FROM visits JOIN shop_stats LABEL bought
AS SELECT visit_id, bought, revenue_7d, hash_bucket(shop_id, 64) AS shop_hash;
