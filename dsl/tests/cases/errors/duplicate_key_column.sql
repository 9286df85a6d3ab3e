-- a key column declared twice
CREATE ENTITY pair KEY (a STRING, a INT64);
