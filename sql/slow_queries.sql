-- slow_queries: the statements of pg_stat_statements at or over
-- perfopt.slow_query_ms, analyzed

SHOW perfopt.slow_query_ms;

SELECT pg_stat_statements_reset() IS NOT NULL AS reset,
       perfopt.query_latency_reset() IS NOT NULL AS latency_reset;
SELECT count(*) FROM leads WHERE zip = '00042';
SELECT count(*) FROM leads WHERE zip = '00043';
SELECT a.name, count(*) FROM leads l, agents a WHERE l.state = a.state GROUP BY a.name ORDER BY 2 DESC LIMIT 1;
CREATE TABLE doomed (id int);
SELECT count(*) FROM doomed WHERE id = 1;
DROP TABLE doomed;

-- at the default threshold (500 ms) none of these is slow
SELECT count(*) FROM perfopt.slow_queries WHERE query LIKE '%FROM leads%';

-- at 0 ms every statement is; each is analyzed, figures from pg_stat_statements
SET perfopt.slow_query_ms = 0;
SELECT query, calls, complexity, impact IN ('low', 'medium', 'high', 'critical') AS has_impact,
       (SELECT array_agg(r->>'code' ORDER BY r->>'code') FROM jsonb_array_elements(recommendations) r) AS codes
  FROM perfopt.slow_queries
 WHERE query ~ '^SELECT (count|a\.name)'
 ORDER BY query;

-- the figures are those of pg_stat_statements; p95_ms comes from perfopt's
-- histograms of the same calls, whose latency (parse and plan included) is
-- at least their execution time
SELECT bool_and(s.mean_ms = p.mean_exec_time) AS same_mean,
       bool_and(s.total_ms = p.total_exec_time) AS same_total,
       bool_and(s.calls = p.calls) AS same_calls,
       bool_and(s.p95_ms >= p.min_exec_time - 0.001) AS p95_at_least_execution
  FROM perfopt.slow_queries s JOIN pg_stat_statements p USING (queryid)
 WHERE p.toplevel AND p.dbid = (SELECT oid FROM pg_database WHERE datname = current_database());
SELECT sum(time_share_pct) BETWEEN 99.9 AND 100.1 AS shares_add_up,
       bool_and(time_share_pct BETWEEN 0 AND 100) AS shares_in_range
  FROM perfopt.slow_queries;

-- statements that name perfopt's own objects are not the application's
-- workload; a name that only ends in "perfopt." is
CREATE SCHEMA myperfopt;
CREATE TABLE myperfopt.notes (id int);
SELECT count(*) FROM myperfopt.notes;
SELECT count(*) FILTER (WHERE query ~ '\mperfopt\.') AS perfopts_own,
       count(*) FILTER (WHERE query LIKE '%FROM myperfopt.notes%') AS named_alike
  FROM perfopt.slow_queries;
DROP SCHEMA myperfopt CASCADE;

-- most total time first
SELECT bool_and(total_ms >= next_total) AS ordered
  FROM (SELECT total_ms, lead(total_ms, 1, 0) OVER () AS next_total FROM perfopt.slow_queries) s;

-- a statement that can no longer be analyzed keeps its row and says why
SELECT complexity, recommendations->0->>'code' AS code, recommendations->0->>'message' AS message
  FROM perfopt.slow_queries WHERE query = 'SELECT count(*) FROM doomed WHERE id = $1';

-- a threshold above every mean leaves nothing
SET perfopt.slow_query_ms = '1h';
SELECT count(*) FROM perfopt.slow_queries;
RESET perfopt.slow_query_ms;

-- bad settings are refused
SET perfopt.slow_query_ms = -1;
SET perfopt.slow_query_ms = 'soon';
-- a misspelt perfopt setting is refused, the prefix is reserved
SET perfopt.slow_query = 100;
