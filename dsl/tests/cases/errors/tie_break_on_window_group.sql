-- TIE BREAK applies to row groups
CREATE FEATURE GROUP g ON user FROM impressions TIE BREAK (request_id)
AS SELECT COUNT(*) OVER 1 DAY AS n;
