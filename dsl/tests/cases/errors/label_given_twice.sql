-- LABEL at most once
CREATE SAMPLE SPEC s FROM impressions LABEL clicked LABEL dwell
AS SELECT clicked, dwell;
