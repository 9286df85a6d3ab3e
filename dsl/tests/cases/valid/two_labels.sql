-- two label columns
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL (clicked, dwell)
AS SELECT request_id, clicked, dwell, age;
