-- analyze_query: the pattern, the complexity score, the features it is made
-- of, and the plan estimate, for statements of every kind

-- the plan estimate is the planner's own: the same as a plain EXPLAIN
SELECT q, abs(a.total_cost - explain_cost(q)) < 0.01 AS same_cost_as_explain
  FROM unnest(ARRAY[
       'SELECT 1',
       'SELECT * FROM leads WHERE id = 42',
       'SELECT status, count(*) FROM leads GROUP BY status',
       'SELECT l.email, a.name FROM leads l JOIN agents a ON a.id = l.agent_id WHERE l.state = ''TX''',
       'UPDATE leads SET score = score + 1 WHERE id = 7',
       'DELETE FROM quotes WHERE lead_id = 3',
       'INSERT INTO agents VALUES (100000, ''x'', ''y'', ''CA'', true, current_date)'
       ]) AS q,
       LATERAL perfopt.analyze_query(q) a;

-- the pattern of each kind of statement
SELECT pattern, total_cost IS NOT NULL AS planned, features->>'command' AS command
  FROM unnest(ARRAY[
       'SELECT 1',
       'INSERT INTO campaigns VALUES (999, ''c'', ''tv'', 1, current_date)',
       'UPDATE campaigns SET budget = 0 WHERE id = 1',
       'DELETE FROM campaigns WHERE id = 1',
       'MERGE INTO campaigns c USING (SELECT 1 AS id) s ON c.id = s.id WHEN MATCHED THEN UPDATE SET budget = 1',
       'TABLE campaigns',
       'VALUES (1), (2)',
       'CREATE TABLE t (a int)',
       'BEGIN',
       'COPY leads TO STDOUT',
       'SELECT * INTO new_leads FROM leads'
       ]) WITH ORDINALITY AS q(q, n),
       LATERAL perfopt.analyze_query(q) a
 ORDER BY n;

-- a one-row lookup by primary key: complexity 1, low impact
SELECT pattern, complexity, impact, plan_rows, features
  FROM perfopt.analyze_query('SELECT * FROM leads WHERE id = 42');

-- joins by type
SELECT features->'joins' AS joins, features->'tables' AS tables
  FROM perfopt.analyze_query($$
    SELECT 1
      FROM leads l
      JOIN agents a ON a.id = l.agent_id
      LEFT JOIN campaigns c ON c.id = l.campaign_id
      RIGHT JOIN quotes q ON q.lead_id = l.id
      FULL JOIN lead_events e ON e.lead_id = q.lead_id
      CROSS JOIN (VALUES (1)) v(x)
      , agents a2
     WHERE a2.id = a.id$$);

-- subqueries, correlated or not; CTEs, recursive or not; set operations
SELECT features->'subqueries' AS subqueries,
       features->'correlated_subqueries' AS correlated,
       features->'ctes' AS ctes,
       features->'recursive_ctes' AS recursive,
       features->'set_operations' AS set_operations
  FROM perfopt.analyze_query($$
    WITH RECURSIVE chain(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM chain WHERE n < 5),
         top_agents AS (SELECT agent_id FROM leads GROUP BY agent_id)
    SELECT l.id,
           (SELECT max(premium) FROM quotes q WHERE q.lead_id = l.id),
           (SELECT count(*) FROM campaigns)
      FROM leads l
     WHERE l.agent_id IN (SELECT agent_id FROM top_agents)
       AND EXISTS (SELECT 1 FROM lead_events e WHERE e.lead_id = l.id)
    UNION
    SELECT n, NULL, NULL FROM chain
    EXCEPT
    SELECT id, NULL, NULL FROM (SELECT id FROM agents) s$$);

-- aggregates, window functions, function calls, sorting, grouping, limits
SELECT features - 'plan' - 'joins' - 'relations' AS features
  FROM perfopt.analyze_query($$
    SELECT DISTINCT state, count(*), avg(score),
           rank() OVER (ORDER BY sum(score) DESC),
           lower(max(email)), coalesce(max(phone), 'none')
      FROM leads
     WHERE created_at > now() - interval '30 days'
     GROUP BY state
    HAVING count(*) > 10
     ORDER BY state
     LIMIT 5 OFFSET 2$$);

-- the plan's side: node types, and what makes a plan heavy
SELECT features->'plan' AS plan
  FROM perfopt.analyze_query($$
    SELECT l.state, count(*)
      FROM leads l JOIN lead_events e ON e.lead_id = l.id
     GROUP BY l.state ORDER BY 2 DESC$$);

SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT features->'plan'->'big_nested_loops' AS big_nested_loops
  FROM perfopt.analyze_query('SELECT * FROM leads l JOIN quotes q ON q.premium > l.premium_estimate');
RESET enable_hashjoin;
RESET enable_mergejoin;

SET work_mem = '64kB';
SELECT features->'plan'->'spilling_sorts' AS spilling_sorts
  FROM perfopt.analyze_query('SELECT * FROM leads ORDER BY last_name, email');
-- a top-N sort under LIMIT keeps only N rows and does not spill
SELECT features->'plan'->'spilling_sorts' AS spilling_sorts
  FROM perfopt.analyze_query('SELECT * FROM leads ORDER BY last_name, email LIMIT 10');
RESET work_mem;

-- the score: documented examples at 1, 5 and 10 (docs/query-analysis.md)
SELECT complexity, impact, features->'points' AS points
  FROM perfopt.analyze_query('SELECT email FROM leads WHERE id = 42');

SELECT complexity, impact, features->'points' AS points
  FROM perfopt.analyze_query($$
    SELECT a.name, count(*) AS leads, avg(l.score) AS avg_score
      FROM leads l
      JOIN agents a ON a.id = l.agent_id
     WHERE l.status = 'new'
     GROUP BY a.name
     ORDER BY leads DESC
     LIMIT 10$$);

SELECT complexity, impact, features->'points' AS points
  FROM perfopt.analyze_query($$
    WITH RECURSIVE weeks(w) AS (
            SELECT date_trunc('week', min(created_at)) FROM leads
            UNION ALL
            SELECT w + interval '1 week' FROM weeks WHERE w < timestamptz '2026-01-01'),
         sold AS (
            SELECT l.agent_id, l.campaign_id, q.premium, l.created_at
              FROM leads l JOIN quotes q ON q.lead_id = l.id
             WHERE q.status = 'accepted')
    SELECT a.name, c.channel, w.w,
           sum(s.premium) AS premium,
           rank() OVER (PARTITION BY w.w ORDER BY sum(s.premium) DESC) AS rank,
           (SELECT count(*) FROM lead_events e
             WHERE e.lead_id IN (SELECT id FROM leads x WHERE x.agent_id = a.id)) AS touches
      FROM weeks w
      LEFT JOIN sold s ON date_trunc('week', s.created_at) = w.w
      LEFT JOIN agents a ON a.id = s.agent_id
      FULL JOIN campaigns c ON c.id = s.campaign_id
     GROUP BY a.id, a.name, c.channel, w.w
    HAVING sum(s.premium) > 1000
    UNION ALL
    SELECT 'unassigned', NULL, NULL, sum(premium), NULL, NULL FROM quotes
     WHERE lead_id NOT IN (SELECT id FROM leads WHERE agent_id IS NOT NULL)
     ORDER BY 4 DESC$$);

-- it never executes the statement
CREATE SEQUENCE seq;
SELECT pattern FROM perfopt.analyze_query($$SELECT nextval('seq')$$);
SELECT nextval('seq');

SELECT count(*) AS events_before FROM lead_events;
SELECT pattern, impact FROM perfopt.analyze_query('DELETE FROM lead_events');
SELECT pattern FROM perfopt.analyze_query('EXPLAIN ANALYZE DELETE FROM lead_events');
SELECT count(*) AS events_after FROM lead_events;

SELECT clock_timestamp() AS before \gset
SELECT pattern FROM perfopt.analyze_query('SELECT pg_sleep(10)');
SELECT clock_timestamp() - :'before' < interval '5 seconds' AS returned_at_once;

-- impact weighs in what pg_stat_statements knows of the statement
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
SELECT count(*) FROM leads WHERE state = 'TX';
SELECT count(*) FROM leads WHERE state = 'TX';
SELECT count(*) FROM leads WHERE state = 'TX';
-- the plan alone says low; having taken nearly all of the time recorded
-- since the reset, the statement is critical
SELECT impact, features->'workload'->'calls' AS calls,
       (features->'workload'->>'time_share_pct')::float8 BETWEEN 0 AND 100 AS share_in_range,
       features->'workload'->>'queryid' = (SELECT queryid::text FROM pg_stat_statements
                                            WHERE query LIKE 'SELECT count(*) FROM leads WHERE state = %') AS same_queryid
  FROM perfopt.analyze_query($$SELECT count(*) FROM leads WHERE state = 'TX'$$);
-- a statement pg_stat_statements has not seen has no workload figures
SELECT features ? 'workload' AS has_workload
  FROM perfopt.analyze_query($$SELECT count(*) FROM agents WHERE state = 'TX'$$);

-- a compared expression that mixes an outer query's column with the inner
-- table's (found by sqlsmith): analyzed, no index suggested for it
SELECT pattern, rec_codes($$
    SELECT a.id FROM agents a
     WHERE EXISTS (SELECT 1 FROM leads l
                    WHERE l.created_at > to_date(a.name, l.email))$$) AS codes
  FROM perfopt.analyze_query($$
    SELECT a.id FROM agents a
     WHERE EXISTS (SELECT 1 FROM leads l
                    WHERE l.created_at > to_date(a.name, l.email))$$);
