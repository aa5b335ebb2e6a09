-- index_drop_candidates: indexes that cost writes and space and serve no
-- reads; never one that backs a constraint

CREATE TABLE drop_test (id int PRIMARY KEY, a int, b int, c text UNIQUE, d int);
INSERT INTO drop_test SELECT i, i % 10, i % 7, 'c' || i, i % 3 FROM generate_series(1, 1000) i;
CREATE INDEX drop_test_a ON drop_test (a);
CREATE INDEX drop_test_a_again ON drop_test (a);          -- duplicate of drop_test_a
CREATE INDEX drop_test_a_b ON drop_test (a, b);           -- makes drop_test_a redundant
CREATE INDEX drop_test_id ON drop_test (id);              -- duplicate of the primary key's index
CREATE UNIQUE INDEX drop_test_d_unique ON drop_test (d, id);
CREATE INDEX drop_test_b ON drop_test (b);                -- never used
-- a failed CREATE INDEX CONCURRENTLY leaves an invalid index behind
CREATE UNIQUE INDEX CONCURRENTLY drop_test_d_invalid ON drop_test (d);
ANALYZE drop_test;

-- read the table, never through drop_test_b
SET enable_seqscan = off;
SELECT count(*) FROM drop_test WHERE a = 1 AND b = 1;
SELECT count(*) FROM drop_test WHERE id = 5;
RESET enable_seqscan;
SELECT pg_stat_force_next_flush();
SELECT pg_sleep(0.1);

SELECT index_name, regexp_replace(reason, '\d+ times', 'N times') AS reason,
       size_bytes > 0 AS has_size, drop_def
  FROM perfopt.index_drop_candidates
 WHERE table_name = 'drop_test'::regclass
 ORDER BY index_name::text;

-- never an index that backs a constraint or enforces uniqueness
SELECT count(*) AS constraint_indexes_listed
  FROM perfopt.index_drop_candidates d
  JOIN pg_constraint k ON k.conindid = d.index_name
 WHERE k.contype IN ('p', 'u', 'x');
SELECT count(*) AS unique_indexes_listed
  FROM perfopt.index_drop_candidates d
  JOIN pg_index i ON i.indexrelid = d.index_name
 WHERE i.indisunique AND i.indisvalid;

-- the drop statements run as they are
SELECT drop_def FROM perfopt.index_drop_candidates
 WHERE table_name = 'drop_test'::regclass AND index_name::text = 'drop_test_d_invalid' \gset
:drop_def
SELECT count(*) AS invalid_left FROM pg_index WHERE indrelid = 'drop_test'::regclass AND NOT indisvalid;
DROP TABLE drop_test;
