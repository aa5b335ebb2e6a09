-- analyze_query: statements with $n parameters, as pg_stat_statements
-- prints them

-- typed literals, which the grammar (and PREPARE) reject with $n in them;
-- interval ($1) is not a form pg_stat_statements prints (it keeps the
-- precision) and stays an error
SELECT pattern, features->'parameters' AS parameters, total_cost > 0 AS planned
  FROM perfopt.analyze_query($$SELECT count(*) FROM leads
                              WHERE created_at >= date $1
                                AND created_at < date $1 + interval $2 year$$);
SELECT q, try_analyze(q)
  FROM unnest(ARRAY[
       'SELECT id FROM leads WHERE created_at > timestamp with time zone $1',
       'SELECT id FROM leads WHERE created_at > timestamptz $1 - interval $2 day',
       'SELECT id FROM leads WHERE premium_estimate > numeric $1',
       'SELECT id FROM leads WHERE created_at < now() - interval $1 hour to minute',
       'SELECT id FROM leads WHERE created_at < now() - interval (2) $1',
       'SELECT id FROM leads WHERE created_at < now() - interval ($1) $2',
       'SELECT id FROM agents WHERE hired_on = date $1 OR hired_on = date $2',
       'SELECT extract(year from date $1)',
       'SELECT id FROM leads WHERE last_name LIKE $1 ESCAPE $2',
       'SELECT created_at AT TIME ZONE $1 FROM leads LIMIT $2 OFFSET $3',
       'SELECT id FROM leads ORDER BY id FETCH FIRST $1 ROWS ONLY'
       ]) AS q;

-- parameters whose type nothing determines get one guessed: no remark
-- about a cast on score comes from the guess
SELECT pattern, rec_codes(q) AS codes
  FROM (VALUES ($$SELECT id FROM leads WHERE score BETWEEN $1 - $2 AND $1 + $2
                   AND premium_estimate > $3 * $4$$)) v(q),
       LATERAL perfopt.analyze_query(q);
SELECT try_analyze('SELECT $1') AS untyped, try_analyze('SELECT $1 || $2') AS concatenated,
       try_analyze('SELECT email FROM leads WHERE email = $1 || $2') AS compared;

-- the same statement with constants and as pg_stat_statements normalizes
-- it: same pattern and plan shape; the generic plan costs may differ
SELECT a.pattern = b.pattern AS same_pattern,
       a.features->'plan'->'nodes' = b.features->'plan'->'nodes' AS same_plan_nodes
  FROM perfopt.analyze_query($$SELECT email FROM leads WHERE id = 42$$) a,
       perfopt.analyze_query($$SELECT email FROM leads WHERE id = $1$$) b;

-- every statement pg_stat_statements recorded can be analyzed: run a
-- workload, then analyze each normalized text it holds
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
SELECT count(*) FROM leads WHERE created_at >= date '2025-03-01' AND created_at < date '2025-03-01' + interval '1' month;
SELECT count(*) FROM quotes WHERE premium BETWEEN 0.06 - 0.01 AND 0.06 + 0.01;
SELECT state, count(*) FROM leads WHERE status IN ('new', 'sold') AND score > 50 GROUP BY state ORDER BY 2 DESC LIMIT 3;
SELECT l.email FROM leads l JOIN agents a ON a.id = l.agent_id WHERE a.state = 'CA' AND l.id < 5 ORDER BY 1;
SELECT count(*) FROM lead_events WHERE payload->>'channel' = 'sms' AND created_at > timestamptz '2025-06-01 00:00+00';
SELECT id FROM leads WHERE lower(email) = lower('LEAD7@yahoo.com');
SELECT substring(email from 1 for 5) FROM leads WHERE id = 1;
UPDATE leads SET score = score + 1, updated_at = timestamptz '2025-07-01 00:00+00' WHERE id = 3;
INSERT INTO lead_events VALUES (1000000, 1, 'note', timestamptz '2025-07-01 00:00+00', '{"a": 1}');
DELETE FROM lead_events WHERE id = 1000000;
SELECT count(*) AS normalized_texts,
       count(*) FILTER (WHERE try_analyze(query) <> 'ok') AS failed
  FROM pg_stat_statements
 WHERE query ~ '\$[0-9]';

-- a normalized text finds its figures in pg_stat_statements by its text
SELECT a.features->'workload'->'calls' AS calls
  FROM pg_stat_statements s, LATERAL perfopt.analyze_query(s.query) a
 WHERE s.query LIKE 'SELECT substring(email from%';
