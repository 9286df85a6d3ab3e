-- aggregates need OVER <duration>
CREATE FEATURE GROUP g ON user FROM impressions AS SELECT COUNT(*) AS n;
