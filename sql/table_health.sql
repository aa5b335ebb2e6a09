-- table_health: components, score, issues and recommendations; fast
-- (statistics only) and exact (pages read) bloat against pgstattuple

CREATE EXTENSION pgstattuple;
CREATE TABLE health_test (id int PRIMARY KEY, payload text, n int)
    WITH (autovacuum_enabled = false);
INSERT INTO health_test SELECT i, repeat('x', 100), i FROM generate_series(1, 20000) i;
-- statistics reach shared memory when the next transaction ends: flush the
-- counts of each change before vacuum or analyze resets them
SELECT pg_stat_force_next_flush();
VACUUM ANALYZE health_test;
SELECT pg_stat_force_next_flush();

-- a fresh table: healthy, no bloat to speak of
SELECT health_score, round(est_bloat_pct) AS bloat, round(dead_tuple_pct) AS dead,
       xid_age_pct < 1 AS young, issues, recommendations
  FROM perfopt.table_health WHERE table_name = 'health_test'::regclass;

-- half the rows deleted: dead tuples, vacuum is due
DELETE FROM health_test WHERE id % 2 = 0;
SELECT pg_stat_force_next_flush();
SELECT round(dead_tuple_pct) AS dead, vacuum_due > 1 AS vacuum_due, health_score < 100 AS lower_score,
       (SELECT array_agg(i->>'component') FROM jsonb_array_elements(issues) i) AS issues,
       recommendations->0->>'action' AS first_action,
       recommendations->0->>'statement' AS statement
  FROM perfopt.table_health WHERE table_name = 'health_test'::regclass;

-- exact mode reads every page of a table this small: what pgstattuple reads
SELECT h.measured, h.bloat_error_pct,
       abs(h.est_bloat_pct - (p.dead_tuple_percent + p.free_percent)) < 0.01 AS same_as_pgstattuple
  FROM perfopt.table_health(true) h, pgstattuple('health_test') p
 WHERE h.table_name = 'health_test'::regclass;

-- after VACUUM the dead rows are free space; the fast estimate is within
-- 10 points of pgstattuple, and never negative
SELECT pg_stat_force_next_flush();
VACUUM health_test;
SELECT pg_stat_force_next_flush();
SELECT round(h.dead_tuple_pct) AS dead,
       abs(h.est_bloat_pct - (p.dead_tuple_percent + p.free_percent)) <= 10 AS fast_within_10,
       h.est_bloat_pct >= 0 AS not_negative,
       h.measured
  FROM perfopt.table_health h, pgstattuple('health_test') p
 WHERE h.table_name = 'health_test'::regclass;

-- changes since the last analyze: ANALYZE is due
INSERT INTO health_test SELECT i, 'y', i FROM generate_series(20001, 40000) i;
SELECT pg_stat_force_next_flush();
SELECT analyze_due > 1 AS analyze_due,
       recommendations @> '[{"action": "analyze"}]' AS recommends_it
  FROM perfopt.table_health WHERE table_name = 'health_test'::regclass;
ANALYZE health_test;

-- updates on full pages cannot be HOT (there is no room for the new
-- version on the same page): a fillfactor that leaves room is suggested
UPDATE health_test SET n = n + 1 WHERE id <= 3000;
SELECT pg_stat_force_next_flush();
SELECT round(hot_update_pct) AS hot_pct,
       recommendations @> '[{"action": "fillfactor"}]' AS fillfactor_suggested
  FROM perfopt.table_health WHERE table_name = 'health_test'::regclass;

-- sequential scans of a large table: the index advisor is suggested
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM health_test WHERE id = 7 \g /dev/null
SELECT count(*) FROM health_test WHERE id = 8 \g /dev/null
RESET enable_indexscan;
RESET enable_bitmapscan;
SELECT pg_stat_force_next_flush();
SELECT seq_scan_pct > 0 AS seq_scans_counted, cache_hit_pct BETWEEN 0 AND 100 AS cache_measured
  FROM perfopt.table_health WHERE table_name = 'health_test'::regclass;

-- a duplicate index: its drop statement is a recommendation (the primary
-- key rebuilt first: a compact duplicate of a bloated index plans cheaper,
-- so dropping it would make the workload's range UPDATE costlier)
REINDEX INDEX health_test_pkey;
CREATE INDEX health_test_id ON health_test (id);
SELECT r->>'statement' AS statement
  FROM perfopt.table_health, jsonb_array_elements(recommendations) r
 WHERE table_name = 'health_test'::regclass AND r->>'action' = 'drop_index';
DROP INDEX health_test_id;

-- exact mode for a caller who may not read the table: estimated, not read
CREATE ROLE health_reader;
SET ROLE health_reader;
SELECT measured FROM perfopt.table_health(true) WHERE table_name = 'health_test'::regclass;
RESET ROLE;
DROP ROLE health_reader;

-- autovacuum advice only where it fixes something.  Three tables of 150,000
-- rows, read as if the statistics had counted for 10 hours: one only
-- inserted into (no changes: no advice), one with 100 updates (10 an hour:
-- even at 0.01 autovacuum would wait 155 hours, so no advice), one with
-- 3,000 (300 an hour: 0.2 waits 102 hours, 0.01 about 5)
CREATE TABLE av_static (id int, v int) WITH (autovacuum_enabled = false);
CREATE TABLE av_slow (id int, v int) WITH (autovacuum_enabled = false);
CREATE TABLE av_busy (id int, v int) WITH (autovacuum_enabled = false);
INSERT INTO av_static SELECT i, i FROM generate_series(1, 150000) i;
INSERT INTO av_slow SELECT i, i FROM generate_series(1, 150000) i;
INSERT INTO av_busy SELECT i, i FROM generate_series(1, 150000) i;
UPDATE av_slow SET v = v + 1 WHERE id <= 100;
UPDATE av_busy SET v = v + 1 WHERE id <= 3000;
SELECT pg_stat_force_next_flush();
SELECT set_config('perfopt.now_override',
                  (SELECT coalesce(stats_reset, pg_postmaster_start_time()) + interval '10 hours'
                     FROM pg_stat_database WHERE datname = current_database())::text, false) IS NOT NULL AS clock_set;
SELECT h.table_name, r->>'statement' AS statement, r->>'reason' AS reason
  FROM perfopt.table_health h
  LEFT JOIN LATERAL jsonb_array_elements(h.recommendations) r ON r->>'action' = 'autovacuum'
 WHERE h.table_name IN ('av_static'::regclass, 'av_slow'::regclass, 'av_busy'::regclass)
 ORDER BY h.table_name::text;
-- the reason's numbers are the statistics' own: changes an hour, rows, and
-- the thresholds autovacuum computes from them
WITH s AS (
    SELECT (n_tup_upd + n_tup_del) / 10.0 AS per_hour, n_live_tup + n_dead_tup AS rows
      FROM pg_stat_user_tables WHERE relid = 'av_busy'::regclass),
r AS (
    SELECT r->>'reason' AS reason
      FROM perfopt.table_health h, jsonb_array_elements(h.recommendations) r
     WHERE h.table_name = 'av_busy'::regclass AND r->>'action' = 'autovacuum')
SELECT r.reason LIKE format('the table changes about %s rows an hour %%', round(s.per_hour)) AS rate_adds_up,
       r.reason LIKE format('%% = %s dead rows, %s hours %%', round(50 + 0.2 * s.rows),
                            round((50 + 0.2 * s.rows) / s.per_hour, 1)) AS default_wait_adds_up,
       r.reason LIKE format('%% = %s, %s hours %%', round(50 + 0.01 * s.rows),
                            round((50 + 0.01 * s.rows) / s.per_hour, 1)) AS advised_wait_adds_up
  FROM s, r;
RESET perfopt.now_override;
DROP TABLE av_static, av_slow, av_busy;

-- a table under 1 MB is not marked down for its cache hits: its misses are
-- each page's first reads, here the page its one row created
CREATE TABLE tiny_cold (id int);
INSERT INTO tiny_cold VALUES (1);
SELECT pg_stat_force_next_flush();
SELECT cache_hit_pct < 75 AS cold, NOT issues @> '[{"component": "cache"}]' AS not_marked_down
  FROM perfopt.table_health WHERE table_name = 'tiny_cold'::regclass;
DROP TABLE tiny_cold;

-- the fast estimate takes a column's width from pg_stats as the caller sees
-- it: a role that may not read a column, or whose reads of the table row
-- level security filters, gets the defaults (32 bytes for a text), so wide
-- rows look narrower and the table emptier to it.  One table asked for
-- alone (its catalog rows read through their indexes) gets what it gets
-- when every table is read, where 150 more tables hold rows (then the
-- catalogs are read whole: their index for each table would read more
-- pages).  A dropped column takes no room.  The estimate of an index's
-- entries takes its key columns' widths the same way (8 bytes for a column
-- the caller may not read): a role that may not read the indexed text
-- column sees its index (of distinct values: no deduplication) as mostly
-- empty.
CREATE TABLE width_test (id int, gone int, wide text) WITH (autovacuum_enabled = false);
ALTER TABLE width_test DROP COLUMN gone;
INSERT INTO width_test SELECT i, lpad(i::text, 300, 'w') FROM generate_series(1, 2000) i;
CREATE INDEX width_test_wide ON width_test (wide);
CREATE SCHEMA width_many;
DO $$
BEGIN
    FOR i IN 1..150 LOOP
        EXECUTE format('CREATE TABLE width_many.t%s (id int, v text)', i);
        EXECUTE format('INSERT INTO width_many.t%s VALUES (1, ''v'')', i);
    END LOOP;
END
$$;
ANALYZE width_test, width_many.t1, width_many.t2;
SELECT pg_stat_force_next_flush();
CREATE ROLE width_full;
CREATE ROLE width_id;
GRANT SELECT ON width_test TO width_full;
GRANT SELECT (id) ON width_test TO width_id;
CREATE TEMP TABLE width_seen (who text, est float8, idx float8);
GRANT INSERT ON width_seen TO width_full, width_id;
INSERT INTO width_seen SELECT 'superuser', est_bloat_pct, index_bloat_pct FROM perfopt.table_health(false, NULL, false)
 WHERE table_name = 'width_test'::regclass;
INSERT INTO width_seen SELECT 'superuser, the table alone', est_bloat_pct, index_bloat_pct FROM perfopt.table_health(false, 'width_test', false);
SET ROLE width_full;
INSERT INTO width_seen SELECT 'width_full', est_bloat_pct, index_bloat_pct FROM perfopt.table_health(false, NULL, false)
 WHERE table_name = 'width_test'::regclass;
SET ROLE width_id;
INSERT INTO width_seen SELECT 'width_id', est_bloat_pct, index_bloat_pct FROM perfopt.table_health(false, NULL, false)
 WHERE table_name = 'width_test'::regclass;
RESET ROLE;
ALTER TABLE width_test ENABLE ROW LEVEL SECURITY;
CREATE POLICY width_all ON width_test USING (true);
SET ROLE width_full;
INSERT INTO width_seen SELECT 'width_full under row level security', est_bloat_pct, index_bloat_pct
  FROM perfopt.table_health(false, NULL, false) WHERE table_name = 'width_test'::regclass;
RESET ROLE;
SELECT (SELECT est FROM width_seen WHERE who = 'superuser, the table alone') =
       (SELECT est FROM width_seen WHERE who = 'superuser') AS alone_as_with_all,
       (SELECT est FROM width_seen WHERE who = 'width_full') =
       (SELECT est FROM width_seen WHERE who = 'superuser') AS full_reader_as_superuser,
       (SELECT est FROM width_seen WHERE who = 'width_id') >
       (SELECT est FROM width_seen WHERE who = 'superuser') + 20 AS hidden_column_looks_emptier,
       (SELECT est FROM width_seen WHERE who = 'width_full under row level security') =
       (SELECT est FROM width_seen WHERE who = 'width_id') AS rls_hides_every_column,
       (SELECT (idx, est) FROM width_seen WHERE who = 'superuser, the table alone') =
       (SELECT (idx, est) FROM width_seen WHERE who = 'superuser') AS index_alone_as_with_all,
       (SELECT idx FROM width_seen WHERE who = 'width_full') =
       (SELECT idx FROM width_seen WHERE who = 'superuser') AS index_full_reader_as_superuser,
       (SELECT idx < 25 FROM width_seen WHERE who = 'superuser') AS index_near_full,
       (SELECT idx FROM width_seen WHERE who = 'width_id') >
       (SELECT idx FROM width_seen WHERE who = 'superuser') + 50 AS hidden_key_looks_emptier,
       (SELECT idx FROM width_seen WHERE who = 'width_full under row level security') =
       (SELECT idx FROM width_seen WHERE who = 'width_id') AS rls_hides_the_key,
       (SELECT abs(est - (p.dead_tuple_percent + p.free_percent)) <= 10
          FROM width_seen, pgstattuple('width_test') p WHERE who = 'superuser') AS near_pgstattuple,
       -- so the catalogs were read whole for every table: their look-ups
       -- would cost more (7 rows for a look-up and the rows it fetches,
       -- against 14 for a page of a pass: src/common/catalog.c)
       (SELECT 7 * count(*) + sum(c.relnatts + 6) >= 14 * pg_relation_size('pg_attribute') / 8192
               AND 7 * count(*) + sum(c.relnatts) >= 14 * pg_relation_size('pg_statistic') / 8192
          FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.n_live_tup > 0) AS whole_catalogs_read;
DROP TABLE width_test, width_seen;
SET client_min_messages = warning;
DROP SCHEMA width_many CASCADE;
RESET client_min_messages;
DROP ROLE width_full, width_id;

-- every row is in range
SELECT bool_and(health_score BETWEEN 0 AND 100) AS scores_in_range,
       bool_and(est_bloat_pct BETWEEN 0 AND 100) AS bloat_in_range,
       bool_and(jsonb_typeof(issues) = 'array' AND jsonb_typeof(recommendations) = 'array') AS arrays
  FROM perfopt.table_health;
DROP TABLE health_test;

-- the tables as table_health lists them from pg_class (in C, no longer by a
-- query): those of pg_stat_user_tables and the materialized views, named
-- quoted as needed, with their own autovacuum settings and their
-- transaction-ID ages; a table of perfopt's own only when asked for
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (id int)
    WITH (autovacuum_enabled = false, autovacuum_vacuum_threshold = 5, autovacuum_vacuum_scale_factor = 0,
          autovacuum_freeze_max_age = 100000);
INSERT INTO "Odd Schema"."Mixed Case" SELECT generate_series(1, 20);
DELETE FROM "Odd Schema"."Mixed Case" WHERE id <= 10;
-- a name with a double quote and a backslash: JSON escapes both
CREATE TABLE "Odd Schema"."say ""hi"" \ bye" (id int)
    WITH (autovacuum_enabled = false, autovacuum_vacuum_threshold = 5, autovacuum_vacuum_scale_factor = 0);
INSERT INTO "Odd Schema"."say ""hi"" \ bye" SELECT generate_series(1, 20);
DELETE FROM "Odd Schema"."say ""hi"" \ bye" WHERE id <= 10;
CREATE MATERIALIZED VIEW "Odd Schema".mv AS SELECT 1 AS one;
SELECT pg_stat_force_next_flush();
SELECT h.table_name,
       h.vacuum_due = s.n_dead_tup / 5.0 AS vacuum_due_by_its_threshold,
       h.xid_age_pct = greatest(100.0 * age(c.relfrozenxid) /
                                    coalesce((SELECT split_part(o, '=', 2) FROM unnest(c.reloptions) o
                                               WHERE o LIKE 'autovacuum\_freeze\_max\_age=%'),
                                             current_setting('autovacuum_freeze_max_age'))::float8,
                                100.0 * mxid_age(c.relminmxid) / current_setting('autovacuum_multixact_freeze_max_age')::float8)
           AS xid_age_by_its_setting,
       r->>'statement' AS statement,
       r->>'statement' = format('VACUUM (ANALYZE) %s;', h.table_name) AS statement_names_it
  FROM perfopt.table_health h
  JOIN pg_class c ON c.oid = h.table_name
  JOIN pg_stat_user_tables s ON s.relid = h.table_name
  LEFT JOIN jsonb_array_elements(h.recommendations) r ON r->>'action' = 'vacuum'
 WHERE c.relnamespace = '"Odd Schema"'::regnamespace
 ORDER BY 1;
-- every table pg_stat_user_tables lists, and no other, but for perfopt's own
SELECT (SELECT count(*) FROM pg_stat_user_tables WHERE schemaname <> 'perfopt') AS user_tables,
       (SELECT count(*) FROM perfopt.table_health(false, NULL, false) h
          JOIN pg_stat_user_tables s ON s.relid = h.table_name WHERE s.schemaname <> 'perfopt') AS listed_of_them,
       (SELECT count(*) FROM perfopt.table_health(false, NULL, false)) AS listed;
SELECT count(*) AS perfopt_tables_listed FROM perfopt.table_health
 WHERE table_name::oid IN (SELECT relid FROM pg_stat_user_tables WHERE schemaname = 'perfopt');
SELECT table_name FROM perfopt.table_health(false, 'perfopt.jobs', false);
DROP SCHEMA "Odd Schema" CASCADE;

-- 1,100 tables and their 1,100 indexes: table_health reads their statistics
-- entries in one pass over the shared statistics (from 1,000 relations,
-- src/common/stat_pass.c), perfopt.relation_scans() every relation's scan
-- count; the snapshot fetch mode makes both look each relation up instead,
-- and the results are the same.  No autovacuum: nothing else moves the
-- counters between the reads.
CREATE SCHEMA stat_pass;
DO $$
BEGIN
    FOR i IN 1..1100 LOOP
        EXECUTE format('CREATE TABLE stat_pass.t%s (id int PRIMARY KEY, a int) WITH (autovacuum_enabled = false)', i);
    END LOOP;
    FOR i IN 1..1100 BY 3 LOOP
        EXECUTE format('INSERT INTO stat_pass.t%s SELECT g, g FROM generate_series(1, %s) g', i, i % 50 + 1);
        EXECUTE format('DELETE FROM stat_pass.t%s WHERE id %% 4 = 0', i);
    END LOOP;
END
$$;
SET enable_seqscan = off;
DO $$
DECLARE n bigint;
BEGIN
    FOR i IN 1..1100 BY 5 LOOP
        EXECUTE format('SELECT count(*) FROM stat_pass.t%s WHERE id = 2', i) INTO n;
    END LOOP;
END
$$;
RESET enable_seqscan;
DO $$
DECLARE n bigint;
BEGIN
    FOR i IN 1..1100 BY 7 LOOP
        EXECUTE format('SELECT count(*) FROM stat_pass.t%s', i) INTO n;
    END LOOP;
END
$$;
SELECT pg_stat_force_next_flush();
SELECT pg_sleep(0.1);
CREATE TEMP TABLE th_pass AS
    SELECT table_name::text AS name, health_score, est_bloat_pct, dead_tuple_pct, seq_scan_pct, cache_hit_pct,
           size_bytes, issues, recommendations
      FROM perfopt.table_health(false, NULL, false)
     WHERE table_name::text LIKE 'stat\_pass.%';
CREATE TEMP TABLE scans_pass AS
    SELECT c.relname, perfopt.relation_scans(c.oid) AS scans
      FROM pg_class c WHERE c.relnamespace = 'stat_pass'::regnamespace;
SET stats_fetch_consistency = snapshot;
CREATE TEMP TABLE th_lookup AS
    SELECT table_name::text AS name, health_score, est_bloat_pct, dead_tuple_pct, seq_scan_pct, cache_hit_pct,
           size_bytes, issues, recommendations
      FROM perfopt.table_health(false, NULL, false)
     WHERE table_name::text LIKE 'stat\_pass.%';
CREATE TEMP TABLE scans_lookup AS
    SELECT c.relname, pg_stat_get_numscans(c.oid) AS scans
      FROM pg_class c WHERE c.relnamespace = 'stat_pass'::regnamespace;
RESET stats_fetch_consistency;
-- what the statistics hold: rows, dead rows, index and sequential scans
SELECT count(*) AS tables, count(*) FILTER (WHERE dead_tuple_pct > 0) AS with_dead_rows,
       count(*) FILTER (WHERE seq_scan_pct > 0) AS seq_scanned,
       count(*) FILTER (WHERE seq_scan_pct = 0) AS index_scanned_only
  FROM th_pass;
SELECT count(*) AS relations, count(*) FILTER (WHERE scans > 0) AS scanned FROM scans_pass;
SELECT count(*) AS table_health_rows_differ FROM (TABLE th_pass EXCEPT TABLE th_lookup) d;
SELECT count(*) AS scan_counts_differ FROM (TABLE scans_pass EXCEPT TABLE scans_lookup) d;
-- in cache mode, a transaction that has read a statistic gets the look-ups
BEGIN;
SELECT pg_stat_get_numscans('stat_pass.t1'::regclass) >= 0 AS read_one;
SELECT count(*) AS scan_counts_differ
  FROM (SELECT c.relname, perfopt.relation_scans(c.oid) FROM pg_class c
         WHERE c.relnamespace = 'stat_pass'::regnamespace
        EXCEPT TABLE scans_lookup) d;
COMMIT;
-- the indexes of every kind, among those 1,100 tables: a table's index
-- scans are those of all its indexes (a hash index, an invalid one), as
-- pg_stat_user_tables counts them; the bloat estimate is that of its live
-- valid btrees only (the same as a twin with only its btree); the table
-- asked for alone (its indexes' pg_class rows read through the index) gets
-- what it gets among all (pg_class read whole: precondition checked)
CREATE TABLE stat_pass.mix (id int, h int) WITH (autovacuum_enabled = false);
CREATE TABLE stat_pass.twin (id int, h int) WITH (autovacuum_enabled = false);
INSERT INTO stat_pass.mix SELECT g, g % 100 FROM generate_series(1, 5000) g;
INSERT INTO stat_pass.twin SELECT g, g % 100 FROM generate_series(1, 5000) g;
CREATE INDEX mix_id ON stat_pass.mix (id);
CREATE INDEX twin_id ON stat_pass.twin (id);
CREATE INDEX mix_h ON stat_pass.mix USING hash (h);
CREATE INDEX mix_expr ON stat_pass.mix ((h + 1)) INCLUDE (id);
-- a failed build leaves the index invalid
\set VERBOSITY terse
CREATE UNIQUE INDEX CONCURRENTLY mix_bad ON stat_pass.mix (h);
\set VERBOSITY default
DELETE FROM stat_pass.mix WHERE id % 10 = 0;
DELETE FROM stat_pass.twin WHERE id % 10 = 0;
ANALYZE stat_pass.mix, stat_pass.twin;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM stat_pass.mix WHERE h = 7;
SELECT count(*) FROM stat_pass.mix WHERE id = 7;
SELECT count(*) FROM stat_pass.twin WHERE id = 7;
RESET enable_bitmapscan;
RESET enable_seqscan;
SELECT count(*) FROM stat_pass.mix;
SELECT pg_stat_force_next_flush();
SELECT pg_sleep(0.1);
CREATE TEMP TABLE th_mix AS
    SELECT table_name::text AS name, h.seq_scan_pct, h.index_bloat_pct, h.est_bloat_pct, h.size_bytes
      FROM perfopt.table_health(false, NULL, false) h
     WHERE table_name IN ('stat_pass.mix'::regclass, 'stat_pass.twin'::regclass);
SELECT (SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'stat_pass.mix_bad'::regclass) AS bad_is_invalid,
       (SELECT seq_scan_pct FROM th_mix WHERE name = 'stat_pass.mix') =
       (SELECT 100.0 * seq_scan / (seq_scan + idx_scan) FROM pg_stat_user_tables
         WHERE relid = 'stat_pass.mix'::regclass) AS every_index_scan_counted,
       (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'stat_pass.mix_h'::regclass) > 0 AS hash_scanned,
       (SELECT index_bloat_pct FROM th_mix WHERE name = 'stat_pass.mix') =
       (SELECT index_bloat_pct FROM th_mix WHERE name = 'stat_pass.twin') AS btrees_only,
       (SELECT (seq_scan_pct, index_bloat_pct, est_bloat_pct, size_bytes) FROM th_mix WHERE name = 'stat_pass.mix') =
       (SELECT (seq_scan_pct, index_bloat_pct, est_bloat_pct, size_bytes)
          FROM perfopt.table_health(false, 'stat_pass.mix', false)) AS alone_as_with_all,
       -- pg_class read whole for all, through its index for one table's five
       (SELECT count(*) FROM pg_index i JOIN pg_stat_user_tables t ON t.relid = i.indrelid) >
       pg_relation_size('pg_class') / 8192 AS class_read_whole,
       5 < pg_relation_size('pg_class') / 8192 AS class_probed_alone;
SET client_min_messages = warning;
DROP SCHEMA stat_pass CASCADE;
RESET client_min_messages;

-- Last, as it grows the catalogs: perfopt.index_drop_suspect_indexes()
-- (index_drop_candidates.sql) with pg_index read through its index on the
-- table and pg_class through its index on the OID, once 1,200 more indexes,
-- on tables that have nothing to drop, give pg_index pages enough that the
-- suspects' look-ups cost less (src/common/catalog.c: 7 rows for a look-up
-- and about two indexes a table, against 14 for a page of a pass): the
-- same rows as the catalogs give
CREATE SCHEMA dsi_many;
DO $$
BEGIN
    FOR i IN 1..120 LOOP
        EXECUTE format('CREATE TABLE dsi_many.t%s (a int UNIQUE, b int UNIQUE, c int UNIQUE, d int UNIQUE, '
                       'e int UNIQUE, f int UNIQUE, g int UNIQUE, h int UNIQUE, i int UNIQUE, j int UNIQUE)', i);
    END LOOP;
END
$$;
CREATE TEMP VIEW dsi_catalogs AS
    SELECT i.indexrelid, i.indrelid, i.indnatts, i.indnkeyatts, i.indisunique, i.indisprimary,
           i.indisvalid, i.indisreplident, i.indkey::text AS indkey, i.indcollation::text AS indcollation,
           i.indclass::text AS indclass, i.indoption::text AS indoption, i.indexprs::text AS indexprs,
           i.indpred::text AS indpred, c.relam, c.relkind, c.relname, n.nspname
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE i.indrelid IN (SELECT perfopt.index_drop_suspects());
CREATE TEMP VIEW dsi_function AS
    SELECT indexrelid, indrelid, indnatts, indnkeyatts, indisunique, indisprimary, indisvalid, indisreplident,
           indkey::text, indcollation::text, indclass::text, indoption::text, indexprs::text, indpred::text,
           relam, relkind, relname, nspname
      FROM perfopt.index_drop_suspect_indexes();
SELECT (SELECT count(*) FROM dsi_function) > 0 AS some_indexes,
       NOT EXISTS (SELECT * FROM dsi_catalogs EXCEPT ALL SELECT * FROM dsi_function)
       AND NOT EXISTS (SELECT * FROM dsi_function EXCEPT ALL SELECT * FROM dsi_catalogs) AS same_as_the_catalogs,
       (SELECT 9 * count(*) FROM perfopt.index_drop_suspects()) <
       14 * pg_relation_size('pg_index') / 8192 AS index_looked_up,
       (SELECT 8 * count(*) FROM dsi_function) < 14 * pg_relation_size('pg_class') / 8192 AS class_looked_up;
DROP VIEW dsi_catalogs, dsi_function;
SET client_min_messages = warning;
DROP SCHEMA dsi_many CASCADE;
RESET client_min_messages;
