-- the label is an event column
CREATE SAMPLE SPEC s FROM impressions LABEL click
AS SELECT clicked;
