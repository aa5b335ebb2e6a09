-- the index advisor: every kind of candidate, proven with hypothetical
-- indexes, chosen under a budget, with writes counted

-- one statement: each kind of index, from what the statement compares
SELECT rank, kind, index_def
  FROM perfopt.advise_query('SELECT id FROM leads WHERE zip = ''12345''');
SELECT rank, kind, index_def
  FROM perfopt.advise_query('SELECT id, email FROM leads WHERE agent_id = $1 AND status = ''new'' ORDER BY created_at DESC LIMIT 20');
SELECT rank, kind, index_def
  FROM perfopt.advise_query('SELECT id FROM leads WHERE status = ''sold'' ORDER BY created_at DESC LIMIT 10');
SELECT rank, kind, index_def
  FROM perfopt.advise_query('SELECT id FROM leads WHERE lower(email) = ''lead42@yahoo.com''');
SELECT rank, kind, index_def
  FROM perfopt.advise_query('SELECT carrier, premium FROM quotes WHERE lead_id = 42');
-- a DELETE of a referenced row makes PostgreSQL look up the referencing rows
SELECT rank, kind, index_def, reason
  FROM perfopt.advise_query('DELETE FROM agents WHERE id = 5');
-- covering columns, for an index-only scan on a vacuumed table
VACUUM ANALYZE leads;
SELECT rank, kind, index_def
  FROM perfopt.advise_query('SELECT zip, score FROM leads WHERE zip BETWEEN ''10000'' AND ''10500''');
-- LIKE with a constant prefix, through a pattern operator class
SELECT rank, kind, index_def
  FROM perfopt.advise_query('SELECT id FROM leads WHERE email LIKE ''lead123%''');

-- the costs are the planner's: before is what analyze_query says, after is
-- what EXPLAIN says once the index is real
SELECT a.cost_before = q.total_cost AS before_is_the_plan,
       a.cost_after < a.cost_before AS cheaper,
       round(a.benefit_pct::numeric) = round((100 * (a.cost_before - a.cost_after) / a.cost_before)::numeric) AS benefit_consistent,
       a.reason
  FROM perfopt.advise_query('SELECT id FROM leads WHERE zip = ''12345''') a,
       perfopt.analyze_query('SELECT id FROM leads WHERE zip = ''12345''') q;
CREATE INDEX leads_zip ON leads (zip);
SELECT explain_cost('SELECT id FROM leads WHERE zip = ''12345''') < 20 AS uses_the_real_index;
-- an index that exists already is never recommended again
SELECT count(*) AS recommended
  FROM perfopt.advise_query('SELECT id FROM leads WHERE zip = ''12345''');
DROP INDEX leads_zip;

-- a statement no index helps gets no recommendation
SELECT count(*) FROM perfopt.advise_query('SELECT count(*) FROM leads');
SELECT count(*) FROM perfopt.advise_query('SELECT 1');

-- a workload: a set under a budget, ranked, each with what it adds; each
-- index removes at least min_benefit_pct (1) percent of the cost that the
-- ones before it left: (created_at) for the monthly count, 0.1% of the cost
-- with no index, is about 4% of what the first four leave
CREATE TEMP TABLE workload (n int, query text, weight float8);
INSERT INTO workload VALUES
    (1, 'SELECT id FROM leads WHERE zip = $1', 200),
    (2, 'SELECT id, email FROM leads WHERE agent_id = $1 AND status = ''new'' ORDER BY created_at DESC LIMIT 20', 500),
    (3, 'SELECT carrier, premium FROM quotes WHERE lead_id = $1', 1000),
    (4, 'SELECT kind FROM lead_events WHERE lead_id = $1 ORDER BY created_at DESC LIMIT 10', 1000),
    (5, 'SELECT count(*) FROM leads WHERE created_at >= date $1 AND created_at < date $1 + interval $2 month', 5),
    (6, 'UPDATE leads SET status = $1, updated_at = now() WHERE id = $2', 300);
SELECT rank, kind, index_def, round(benefit_pct::numeric, 1) AS benefit_pct
  FROM perfopt.recommend_indexes_for((SELECT array_agg(query ORDER BY n) FROM workload),
                                     (SELECT array_agg(weight ORDER BY n) FROM workload));
-- the ranks add up: each cost_after is the next cost_before
SELECT bool_and(next_before IS NULL OR cost_after = next_before) AS chained
  FROM (SELECT cost_after, lead(cost_before) OVER (ORDER BY rank) AS next_before
          FROM perfopt.recommend_indexes_for((SELECT array_agg(query ORDER BY n) FROM workload),
                                             (SELECT array_agg(weight ORDER BY n) FROM workload))) r;
-- a budget keeps the set within it, and a smaller one keeps fewer
SELECT budget_mb, count(*) AS indexes, sum(est_size_bytes) <= budget_mb * 1024 * 1024 AS within_budget
  FROM unnest(ARRAY[0.5, 1, 100]) AS budget_mb,
       LATERAL perfopt.recommend_indexes_for((SELECT array_agg(query ORDER BY n) FROM workload),
                                             (SELECT array_agg(weight ORDER BY n) FROM workload),
                                             budget_mb) r
 GROUP BY budget_mb ORDER BY budget_mb;
-- what the run did
SELECT (r->>'statements')::int AS statements, (r->>'planner_calls')::int > 0 AS planned,
       (r->>'cache_hit_pct')::float8 > 0 AS cached,
       (r->>'workload_cost_after')::float8 < (r->>'workload_cost_before')::float8 AS cheaper
  FROM perfopt.last_advisor_run() r;

-- writes: an index on a column that updates change costs every update its
-- HOT chance, and enough updates outweigh what it saves the reads
SELECT weight,
       (SELECT count(*)
          FROM perfopt.recommend_indexes_for(
                   ARRAY['SELECT id FROM leads WHERE score = $1', 'UPDATE leads SET score = score + 1 WHERE id = $1'],
                   ARRAY[10, weight]) r
         WHERE r.index_def LIKE '%("score")%') AS indexes_on_score
  FROM unnest(ARRAY[1, 1000000]) AS weight;

-- the workload of pg_stat_statements
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
SELECT carrier FROM quotes WHERE lead_id = 42;
SELECT carrier FROM quotes WHERE lead_id = 43;
SELECT id FROM leads WHERE zip = '00042';
SELECT rank, kind, index_def,
       queryids = ARRAY(SELECT queryid FROM pg_stat_statements
                         WHERE query LIKE 'SELECT carrier FROM quotes%') AS from_pg_stat_statements
  FROM perfopt.recommend_indexes()
 WHERE index_def LIKE '%quotes%';
SELECT count(*) > 0 AS has_rows FROM perfopt.index_recommendations;

-- bad input: clear errors
SELECT * FROM perfopt.recommend_indexes(0);
SELECT * FROM perfopt.recommend_indexes(-5);
SELECT * FROM perfopt.recommend_indexes('NaN');
SELECT * FROM perfopt.recommend_indexes(NULL, 150);
SELECT * FROM perfopt.recommend_indexes_for(NULL);
SELECT * FROM perfopt.recommend_indexes_for(ARRAY[]::text[]);
SELECT * FROM perfopt.recommend_indexes_for(ARRAY['SELECT 1', 'SELECT 2'], ARRAY[1.0]);
SELECT * FROM perfopt.recommend_indexes_for(ARRAY['SELECT 1', NULL]);
SELECT * FROM perfopt.recommend_indexes_for(ARRAY['SELECT 1'], ARRAY[-1.0]);
SELECT * FROM perfopt.recommend_indexes_for(ARRAY[['SELECT 1'], ['SELECT 2']]);
SELECT * FROM perfopt.advise_query(NULL);
-- a statement that cannot be used is left out with a NOTICE; the others count
SELECT rank, kind, index_def
  FROM perfopt.recommend_indexes_for(ARRAY['SELECT id FROM leads WHERE zip = $1',
                                           'SELECT * FROM no_such_table',
                                           'SELEKT 1']);

-- hypothetical indexes never outlive a run, also a run that fails; and
-- the session's own are left alone
SELECT count(*) AS mine FROM hypopg_create_index('CREATE INDEX ON agents (name)');
SELECT count(*) FROM perfopt.advise_query('SELECT id FROM leads WHERE zip = ''1''');
SELECT count(*) AS hypothetical_left FROM hypopg_list_indexes;
SET statement_timeout = '10ms';
DO $$
BEGIN
    PERFORM * FROM perfopt.recommend_indexes_for(ARRAY(SELECT query FROM workload), NULL, NULL, 0);
EXCEPTION WHEN query_canceled THEN
    NULL;
END
$$;
RESET statement_timeout;
SELECT count(*) AS hypothetical_left FROM hypopg_list_indexes;
SELECT hypopg_reset();
