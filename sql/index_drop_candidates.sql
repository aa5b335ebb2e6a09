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

SELECT index_name, reason_code, regexp_replace(reason, '\d+ times', 'N times') AS reason,
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

-- the rows are safe together (issue 16): dc_a2 is the index the workload
-- scans, dc_a its duplicate, dc_ab covers both and is never scanned.  Each
-- alone could be dropped; all three together would leave "a = 5" without
-- an index.  The set keeps the one in use.
CREATE TABLE dc (a int, b int, c text);
INSERT INTO dc SELECT i % 1000, i % 7, repeat('x', 50) FROM generate_series(1, 20000) i;
CREATE INDEX dc_a2 ON dc (a);
ANALYZE dc;
SELECT count(*) FROM dc WHERE a = 5;
SELECT count(*) FROM dc WHERE a = 6;
SELECT count(*) FROM dc WHERE a = 7;
CREATE INDEX dc_a ON dc (a);
CREATE INDEX dc_ab ON dc (a, b);
SELECT pg_stat_force_next_flush();
SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = 'dc' ORDER BY 1;
SELECT index_name, reason_code, regexp_replace(reason, '\d+ times', 'N times') AS reason, drop_def
  FROM perfopt.index_drop_candidates
 WHERE table_name = 'dc'::regclass
 ORDER BY index_name::text;
-- every row followed: the statement keeps its index
SELECT drop_def FROM perfopt.index_drop_candidates WHERE table_name = 'dc'::regclass \gexec
EXPLAIN (COSTS OFF) SELECT count(*) FROM dc WHERE a = 5;
SELECT indexrelid::regclass AS left_on_dc FROM pg_index WHERE indrelid = 'dc'::regclass;

-- the set function checks what it is given
SELECT perfopt.index_drop_safe_set('{}', '{}');
SELECT perfopt.index_drop_safe_set(ARRAY['dc'::regclass], ARRAY[NULL::regclass]);
SELECT perfopt.index_drop_safe_set(ARRAY['dc_a2'::regclass], '{}');
SELECT perfopt.index_drop_safe_set(ARRAY[NULL::regclass], ARRAY[NULL::regclass]);
-- alone, the index in use is not safe to drop: "a = 5" needs it
SELECT perfopt.index_drop_safe_set(ARRAY['dc_a2'::regclass], ARRAY[NULL::regclass]);
DROP TABLE dc;

-- a partitioned table: a partition's index attached to the parent's goes
-- only with it, and the parent's is dropped without CONCURRENTLY
CREATE TABLE dcp (id int, a int) PARTITION BY RANGE (id);
CREATE TABLE dcp_1 PARTITION OF dcp FOR VALUES FROM (0) TO (1000);
CREATE TABLE dcp_2 PARTITION OF dcp FOR VALUES FROM (1000) TO (2000);
INSERT INTO dcp SELECT i, i % 10 FROM generate_series(0, 1999) i;
CREATE INDEX dcp_a ON dcp (a);
CREATE INDEX dcp_a_again ON dcp (a);
ANALYZE dcp;
SELECT index_name, reason_code, drop_def FROM perfopt.index_drop_candidates
 WHERE table_name::text LIKE 'dcp%' ORDER BY index_name::text;
-- a partitioned index's size is its partitions' indexes'
SELECT index_name, size_bytes > 0 AND size_bytes = (SELECT sum(pg_relation_size(p.relid))
                                                      FROM pg_partition_tree(index_name) p) AS size_of_its_partitions
  FROM perfopt.index_drop_candidates WHERE table_name = 'dcp'::regclass;
SELECT drop_def FROM perfopt.index_drop_candidates WHERE table_name = 'dcp'::regclass \gexec
SELECT count(*) AS indexes_left FROM pg_index WHERE indrelid IN ('dcp'::regclass, 'dcp_1'::regclass, 'dcp_2'::regclass);
DROP TABLE dcp;
-- one without partitions has nothing to count: its size is 0
CREATE TABLE dcp0 (id int, a int) PARTITION BY RANGE (id);
CREATE INDEX dcp0_a ON dcp0 (a);
CREATE INDEX dcp0_a_again ON dcp0 (a);
SELECT index_name, reason_code, size_bytes FROM perfopt.index_drop_candidates WHERE table_name = 'dcp0'::regclass;
DROP TABLE dcp0;
-- a partitioned index's sums over its partitions, from
-- index_drop_suspect_indexes(), are what pg_stat_user_indexes and
-- pg_stat_user_tables give over pg_partition_tree(): at two levels, with a
-- partition's own index scanned, a partition read by a sequential scan,
-- and two partitioned indexes of the table
CREATE TABLE dct (id int, a int, b int) PARTITION BY RANGE (id);
CREATE TABLE dct_1 PARTITION OF dct FOR VALUES FROM (0) TO (100);
CREATE TABLE dct_2 PARTITION OF dct FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
CREATE TABLE dct_2a PARTITION OF dct_2 FOR VALUES FROM (100) TO (150);
CREATE TABLE dct_2b PARTITION OF dct_2 FOR VALUES FROM (150) TO (200);
INSERT INTO dct SELECT i, i % 10, i % 7 FROM generate_series(0, 199) i;
CREATE INDEX dct_a ON dct (a);
CREATE INDEX dct_1_b ON dct_1 (b);
ANALYZE dct;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM dct WHERE a = 1;
SELECT count(*) FROM dct_1 WHERE b = 1;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT count(*) FROM dct_2a;
-- a second partitioned index of the table, never scanned: the same reads
CREATE INDEX dct_ab ON dct (a, b);
SELECT pg_stat_force_next_flush();
SELECT i.indexrelid::regclass AS index_name, i.relkind, i.tree_scans > 0 AS scanned, i.tree_reads > i.tree_scans AS read_more, i.tree_bytes > 0 AS has_bytes,
       i.tree_scans = (SELECT sum(s.idx_scan) FROM pg_partition_tree(i.indexrelid) p
                         JOIN pg_stat_user_indexes s ON s.indexrelid = p.relid) AS scans_as_the_views,
       i.tree_reads = (SELECT sum(t.seq_scan + coalesce(t.idx_scan, 0)) FROM pg_partition_tree(i.indrelid) p
                         JOIN pg_stat_user_tables t ON t.relid = p.relid) AS reads_as_the_views,
       i.tree_bytes = (SELECT sum(pg_relation_size(p.relid)) FROM pg_partition_tree(i.indexrelid) p) AS bytes_as_files
  FROM perfopt.index_drop_suspect_indexes() i WHERE i.indrelid = 'dct'::regclass ORDER BY 1;
-- another index has none
SELECT count(*) AS sums_of_other_indexes FROM perfopt.index_drop_suspect_indexes() i
 WHERE i.relkind <> 'I' AND (i.tree_scans, i.tree_reads, i.tree_bytes) IS DISTINCT FROM (NULL, NULL, NULL);
DROP TABLE dct;

-- the view reads only the tables index_drop_suspects() names (issue 18):
-- those whose candidates come from two indexes that start alike, scanned or
-- unique, are named too.  dcs_u2 is a unique duplicate of the unique dcs_u1,
-- dcs_e2 a duplicate of the expression index dcs_e1, dcs_b a prefix of dcs_bc;
-- every non-unique one is scanned, so none of them is "unused".  dcs_n has a
-- primary key and one scanned index: nothing to drop, and not read.
CREATE TABLE dcs (id int PRIMARY KEY, a int, b int, c int, e text);
INSERT INTO dcs SELECT i, i, i % 50, i % 7, 'e' || i FROM generate_series(1, 5000) i;
CREATE UNIQUE INDEX dcs_u1 ON dcs (a);
CREATE UNIQUE INDEX dcs_u2 ON dcs (a);
CREATE INDEX dcs_e1 ON dcs (lower(e));
CREATE INDEX dcs_e2 ON dcs (lower(e));
CREATE INDEX dcs_b ON dcs (b);
CREATE INDEX dcs_bc ON dcs (b, c);
CREATE TABLE dcs_n (id int PRIMARY KEY, a int);
INSERT INTO dcs_n SELECT i, i % 100 FROM generate_series(1, 5000) i;
CREATE INDEX dcs_n_a ON dcs_n (a);
ANALYZE dcs, dcs_n;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM dcs WHERE lower(e) = 'e5';
SELECT count(*) FROM dcs WHERE b = 5;
SELECT count(*) FROM dcs WHERE b = 5 AND c = 1;
SELECT count(*) FROM dcs_n WHERE a = 5;
SELECT count(*) FROM dcs_n WHERE id = 5;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT pg_stat_force_next_flush();
SELECT indexrelname, idx_scan > 0 AS scanned FROM pg_stat_user_indexes
 WHERE relname IN ('dcs', 'dcs_n') ORDER BY 1;
SELECT t::regclass AS suspect FROM perfopt.index_drop_suspects() t
 WHERE t IN ('dcs'::regclass, 'dcs_n'::regclass);
SELECT index_name, reason_code FROM perfopt.index_drop_candidates
 WHERE table_name IN ('dcs'::regclass, 'dcs_n'::regclass) ORDER BY index_name::text;
-- an invalid index alone makes its table one
\set VERBOSITY terse
CREATE UNIQUE INDEX CONCURRENTLY dcs_n_bad ON dcs_n (a);
\set VERBOSITY default
SELECT t::regclass AS suspect FROM perfopt.index_drop_suspects() t WHERE t = 'dcs_n'::regclass;
-- a valid non-unique index never scanned makes its table one only once the
-- table was read, as the view's "unused" asks (building an index reads its
-- table: the counters are reset after, as after a statistics reset):
-- dcs_cold is not read, dcs_warm is read once (a sequential scan), dcs_pk
-- through its primary key only; a partitioned table is one whatever its
-- own reads (the view sums its partitions'), its partition is not while it
-- is not read
CREATE TABLE dcs_cold (id int, a int);
CREATE INDEX dcs_cold_a ON dcs_cold (a);
CREATE TABLE dcs_warm (id int, a int);
CREATE INDEX dcs_warm_a ON dcs_warm (a);
CREATE TABLE dcs_pk (id int PRIMARY KEY, a int);
CREATE INDEX dcs_pk_a ON dcs_pk (a);
CREATE TABLE dcs_part (id int, a int) PARTITION BY RANGE (id);
CREATE TABLE dcs_part_1 PARTITION OF dcs_part FOR VALUES FROM (0) TO (100);
CREATE INDEX dcs_part_a ON dcs_part (a);
SELECT pg_stat_force_next_flush();
SELECT count(pg_stat_reset_single_table_counters(c.oid)) AS reset
  FROM pg_class c WHERE c.relname IN ('dcs_cold', 'dcs_warm', 'dcs_pk', 'dcs_part_1');
SELECT relname, seq_scan, idx_scan FROM pg_stat_user_tables
 WHERE relname IN ('dcs_cold', 'dcs_warm', 'dcs_pk', 'dcs_part_1') ORDER BY 1;
SELECT count(*) FROM dcs_warm;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM dcs_pk WHERE id = 1;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT pg_stat_force_next_flush();
SELECT relname, seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'dcs_pk';
SELECT c.relname AS table_name, c.oid IN (SELECT perfopt.index_drop_suspects()) AS suspect,
       (SELECT string_agg(d.reason_code, ', ') FROM perfopt.index_drop_candidates d
         WHERE d.table_name = c.oid) AS candidates
  FROM pg_class c WHERE c.relname IN ('dcs_cold', 'dcs_warm', 'dcs_pk', 'dcs_part', 'dcs_part_1') ORDER BY 1;
-- once read, dcs_cold is one; the partition, read through its table, is
-- not: its only index is attached to the partitioned table's, which the
-- view offers instead
SELECT count(*) FROM dcs_cold;
SELECT count(*) FROM dcs_part;
SELECT pg_stat_force_next_flush();
SELECT c.relname AS table_name, c.oid IN (SELECT perfopt.index_drop_suspects()) AS suspect,
       (SELECT string_agg(d.reason_code, ', ') FROM perfopt.index_drop_candidates d
         WHERE d.table_name = c.oid) AS candidates
  FROM pg_class c WHERE c.relname IN ('dcs_cold', 'dcs_part', 'dcs_part_1') ORDER BY 1;
DROP TABLE dcs_cold, dcs_warm, dcs_pk, dcs_part;
-- index_drop_suspect_indexes(), which the view reads, gives the suspects'
-- indexes as pg_index, pg_class and pg_namespace do, here with the catalogs
-- read whole (their look-ups would cost more: src/common/catalog.c; read
-- through their indexes at the end of table_health.sql, whose checks of the
-- catalogs' reads the catalogs grown for that would change)
CREATE VIEW dsi_catalogs AS
    SELECT i.indexrelid, i.indrelid, i.indnatts, i.indnkeyatts, i.indisunique, i.indisprimary,
           i.indisvalid, i.indisreplident, i.indkey::text AS indkey, i.indcollation::text AS indcollation,
           i.indclass::text AS indclass, i.indoption::text AS indoption, i.indexprs::text AS indexprs,
           i.indpred::text AS indpred, c.relam, c.relkind, c.relname, n.nspname
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE i.indrelid IN (SELECT perfopt.index_drop_suspects());
CREATE VIEW dsi_function AS
    SELECT indexrelid, indrelid, indnatts, indnkeyatts, indisunique, indisprimary, indisvalid, indisreplident,
           indkey::text, indcollation::text, indclass::text, indoption::text, indexprs::text, indpred::text,
           relam, relkind, relname, nspname
      FROM perfopt.index_drop_suspect_indexes();
CREATE VIEW dsi_check AS
    SELECT (SELECT count(*) FROM dsi_function) AS indexes,
           (SELECT count(*) FROM dsi_function WHERE indexrelid = 'dcs_e2'::regclass AND indexprs IS NOT NULL) AS with_expression,
           NOT EXISTS (SELECT * FROM dsi_catalogs EXCEPT ALL SELECT * FROM dsi_function)
           AND NOT EXISTS (SELECT * FROM dsi_function EXCEPT ALL SELECT * FROM dsi_catalogs) AS same_as_the_catalogs,
           (SELECT 9 * count(*) FROM perfopt.index_drop_suspects()) <
           14 * pg_relation_size('pg_index') / 8192 AS index_looked_up,
           (SELECT 8 * count(*) FROM dsi_function) < 14 * pg_relation_size('pg_class') / 8192 AS class_looked_up;
SELECT * FROM dsi_check;
DROP VIEW dsi_check, dsi_function, dsi_catalogs;
DROP TABLE dcs, dcs_n;

-- relation_bytes, which gives the candidates' sizes, reads pg_class once for
-- every relation from the 1,000th call of a transaction; what changes in
-- pg_class after that (a TRUNCATE, one rolled back, a new table) is seen
CREATE TABLE rb (id int);
INSERT INTO rb SELECT generate_series(1, 1000);
BEGIN;
SELECT count(perfopt.relation_bytes('rb'::regclass)) AS calls FROM generate_series(1, 1500);
SELECT perfopt.relation_bytes('rb') = pg_relation_size('rb') AS same, pg_relation_size('rb') > 0 AS has_rows;
TRUNCATE rb;
SELECT count(perfopt.relation_bytes('rb'::regclass)) AS calls FROM generate_series(1, 1500);
SELECT perfopt.relation_bytes('rb') AS truncated, pg_relation_size('rb') AS size;
ROLLBACK;
BEGIN;
SAVEPOINT s;
TRUNCATE rb;
SELECT count(perfopt.relation_bytes('rb'::regclass)) AS calls FROM generate_series(1, 1500);
ROLLBACK TO s;
SELECT perfopt.relation_bytes('rb') = pg_relation_size('rb') AS same_after_rollback,
       pg_relation_size('rb') > 0 AS has_rows;
CREATE TABLE rb2 AS SELECT generate_series(1, 1000) AS id;
SELECT perfopt.relation_bytes('rb2') = pg_relation_size('rb2') AS new_table, pg_relation_size('rb2') > 0 AS has_rows;
COMMIT;
DROP TABLE rb, rb2;
