-- pass-through roles: event columns, the event time, labels and features
CREATE SAMPLE SPEC s FROM impressions JOIN item_stats LABEL clicked
AS SELECT impressions.request_id, ts, clicked, item_stats.ctr, tags;
