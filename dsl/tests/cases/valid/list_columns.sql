-- LIST columns, nested lists included
CREATE SOURCE docs (doc_id INT64, ts TIMESTAMP, tags LIST<STRING>, ids LIST<INT64>, grid LIST<LIST<INT64>>)
EVENT TIME ts KAFKA TOPIC 'docs';
CREATE ENTITY doc KEY (doc_id INT64);
CREATE FEATURE GROUP doc_tags ON doc FROM docs AS SELECT tags, ids, grid, cardinality(tags) AS n_tags;
