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

-- every row is in range
SELECT bool_and(health_score BETWEEN 0 AND 100) AS scores_in_range,
       bool_and(est_bloat_pct BETWEEN 0 AND 100) AS bloat_in_range,
       bool_and(jsonb_typeof(issues) = 'array' AND jsonb_typeof(recommendations) = 'array') AS arrays
  FROM perfopt.table_health;
DROP TABLE health_test;
