-- ties broken by one and by two columns
CREATE SOURCE profile_log (user_id STRING, ts TIMESTAMP, seq INT64, writer STRING, age INT64)
EVENT TIME ts BATCH PARQUET 'log/*.parquet';
CREATE FEATURE GROUP by_seq ON user FROM profile_log TIE BREAK seq AS SELECT age;
CREATE FEATURE GROUP by_seq_writer ON user FROM profile_log TIE BREAK (seq, writer) AS SELECT age;
