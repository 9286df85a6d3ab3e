-- TTL applies to row groups
CREATE FEATURE GROUP g ON user FROM impressions TTL 1 DAY
AS SELECT COUNT(*) OVER 1 DAY AS n;
