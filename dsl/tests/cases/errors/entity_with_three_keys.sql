-- at most two key columns
CREATE ENTITY triple KEY (a STRING, b INT64, c STRING);
