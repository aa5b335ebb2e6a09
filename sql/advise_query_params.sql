-- parameter-aware index advice (issue 17): advise_query(query, params)
-- costs a normalized statement on custom plans with the values given

-- a schema of its own, small enough (30,000 rows) that ANALYZE reads every
-- row: quotes whose created_at is not in the table's physical order, and
-- leads whose status 'new' is rare (2%), 'lost' uncommon (8%)
CREATE SCHEMA p17;
CREATE TABLE p17.quotes (
    id          bigint PRIMARY KEY,
    carrier     text NOT NULL,
    premium     numeric(10,2) NOT NULL,
    created_at  timestamptz NOT NULL
);
INSERT INTO p17.quotes
SELECT i, (ARRAY['Acme Mutual','Blue Shield','Evergreen','Northstar'])[1 + i % 4],
       round((300 + (i::bigint * 104729) % 4000)::numeric, 2),
       timestamptz '2025-01-01 00:00+00' + ((i::bigint * 7919) % 30000) * interval '15 minutes'
  FROM generate_series(1, 30000) i;
CREATE TABLE p17.leads (
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    agent_id    int NOT NULL,
    status      text NOT NULL,
    score       int NOT NULL,
    notes       text,
    created_at  timestamptz NOT NULL
);
INSERT INTO p17.leads
SELECT i, 'lead' || i || '@example.org', 1 + (i * 37) % 20,
       CASE WHEN i % 50 = 0 THEN 'new' WHEN i % 10 = 0 THEN 'lost' ELSE 'contacted' END,
       (i::bigint * 7877) % 1000,
       repeat('n', 40),
       timestamptz '2025-01-01 00:00+00' + i * interval '15 minutes'
  FROM generate_series(1, 30000) i;
VACUUM ANALYZE p17.quotes, p17.leads;
SELECT attname, most_common_vals, most_common_freqs
  FROM pg_stats WHERE schemaname = 'p17' AND tablename = 'leads' AND attname = 'status';

-- the range case: a bound computed from parameters.  The generic plan
-- cannot see the date; with the recent one the application sends, a
-- covering index on created_at pays
SELECT rank, kind, index_def, reason ~ 'generic plan: no parameter samples' AS generic
  FROM perfopt.advise_query($$SELECT carrier, avg(premium) FROM p17.quotes WHERE created_at >= timestamptz $1 + $2 * interval $3 GROUP BY carrier$$);
SELECT rank, kind, index_def, round(benefit_pct) AS benefit_pct,
       substring(reason from '\(custom plans[^)]*\)') AS planned
  FROM perfopt.advise_query($$SELECT carrier, avg(premium) FROM p17.quotes WHERE created_at >= timestamptz $1 + $2 * interval $3 GROUP BY carrier$$,
                            ARRAY['2025-11-01 00:00+00', '-30', '1 day']);
-- an old date keeps most rows: no index pays
SELECT count(*) AS recommendations
  FROM perfopt.advise_query($$SELECT carrier, avg(premium) FROM p17.quotes WHERE created_at >= timestamptz $1 + $2 * interval $3 GROUP BY carrier$$,
                            ARRAY['2025-01-10 00:00+00', '-1', '1 day']);

-- the partial-index case: status = 'new' is a small, steady share of the
-- rows (an MCV of 2%) and most executions ask for it: a partial covering
-- index; the sets with another status are costed without it
SELECT rank, kind, index_def,
       substring(reason from '\(custom plans[^)]*\)') AS planned
  FROM perfopt.advise_query($$SELECT id, email, score FROM p17.leads WHERE status = $1 AND score > $2 ORDER BY score DESC LIMIT $3$$,
                            ARRAY[['new', '900', '20'], ['new', '500', '20'], ['new', '100', '20'], ['contacted', '900', '20']]);
-- without the sets: a plain composite, generic plan
SELECT rank, kind, index_def, reason ~ 'generic plan: no parameter samples' AS generic
  FROM perfopt.advise_query($$SELECT id, email, score FROM p17.leads WHERE status = $1 AND score > $2 ORDER BY score DESC LIMIT $3$$);
-- 'new' in only one set of four is not most executions: no partial index
SELECT count(*) FILTER (WHERE kind = 'partial') AS partial
  FROM perfopt.advise_query($$SELECT id, email, score FROM p17.leads WHERE status = $1 AND score > $2 ORDER BY score DESC LIMIT $3$$,
                            ARRAY[['new', '900', '20'], ['lost', '500', '20'], ['contacted', '100', '20'], ['lost', '900', '20']]);
-- nor is 'new' in the one set given: a value seen once does not recur (a
-- sampler's single execution of a statement says nothing of the next)
SELECT count(*) FILTER (WHERE kind = 'partial') AS partial
  FROM perfopt.advise_query($$SELECT id, email, score FROM p17.leads WHERE status = $1 AND score > $2 ORDER BY score DESC LIMIT $3$$,
                            ARRAY['new', '900', '20']);

-- the composite-order case: equality columns first, then the sort column
SELECT rank, kind, index_def
  FROM perfopt.advise_query($$SELECT id, email FROM p17.leads WHERE agent_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3$$,
                            ARRAY[['7', 'lost', '20'], ['8', 'lost', '20'], ['9', 'lost', '20']]);

-- its generic plan prices status = $2 at a third of the rows: the sort
-- column is only covered, not in the key
SELECT rank, kind, index_def
  FROM perfopt.advise_query($$SELECT id, email FROM p17.leads WHERE agent_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3$$);

-- the costs are those of the custom plans: the one set's cost before is
-- the plan of the statement with those constants
SELECT a.cost_before = q.total_cost AS before_is_the_custom_plan
  FROM perfopt.advise_query($$SELECT id, email FROM p17.leads WHERE agent_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3$$,
                            ARRAY['7', 'lost', '20']) a,
       perfopt.analyze_query($$SELECT id, email FROM p17.leads WHERE agent_id = 7 AND status = 'lost' ORDER BY created_at DESC LIMIT 20$$) q;

-- a NULL element is an SQL NULL
SELECT count(*) AS recommendations
  FROM perfopt.advise_query($$SELECT id FROM p17.leads WHERE status = $1$$, ARRAY[NULL]::text[]);

-- bad input: a clear error with its SQLSTATE and a hint
\set VERBOSITY default
CREATE FUNCTION p17.try_advise(query text, params text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    state text;
    message text;
    hint text;
BEGIN
    PERFORM perfopt.advise_query(query, params);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || message || CASE WHEN hint <> '' THEN ' (hint given)' ELSE ' (no hint)' END;
END
$$;
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE status = $1$$, NULL);
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE status = $1$$, '{}');
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE status = $1 AND score > $2$$, ARRAY['new']);
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE status = $1$$, ARRAY[[['new']]]);
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE status = $1$$, array_fill('new'::text, ARRAY[54001]));
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE score > $1$$, ARRAY['many']);
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE created_at > $1$$, ARRAY['yesterday-ish']);
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE status = 'new'$$, ARRAY['new']);
SELECT perfopt.advise_query(NULL, ARRAY['x']) IS NULL AS null_query;

-- a hostile value: values are literals read by the type's input function,
-- never SQL, so a function call in one runs nothing
CREATE TABLE p17.calls (n int);
CREATE FUNCTION p17.spy() RETURNS text LANGUAGE sql AS $$ INSERT INTO p17.calls VALUES (1) RETURNING 'new' $$;
CREATE ROLE p17_tenant;
GRANT USAGE ON SCHEMA p17 TO p17_tenant;
GRANT SELECT ON p17.leads TO p17_tenant;
GRANT INSERT ON p17.calls TO p17_tenant;
GRANT EXECUTE ON FUNCTION p17.try_advise(text, text[]) TO p17_tenant;
SET ROLE p17_tenant;
SELECT count(*) AS recommendations
  FROM perfopt.advise_query($$SELECT id, email, score FROM p17.leads WHERE status = $1 AND score > $2 ORDER BY score DESC LIMIT $3$$,
                            ARRAY['p17.spy()', '1', '20']);
SELECT count(*) AS recommendations
  FROM perfopt.advise_query($$SELECT id, email, score FROM p17.leads WHERE status = $1 AND score > $2 ORDER BY score DESC LIMIT $3$$,
                            ARRAY[$v$new'); SELECT p17.spy(); --$v$, '1', '20']);
SELECT p17.try_advise($$SELECT id FROM p17.leads WHERE score > $1$$, ARRAY['(SELECT 1 FROM p17.spy())']);
-- planned as the caller: a table it may not read is an error, not advice
SELECT p17.try_advise($$SELECT carrier FROM p17.quotes WHERE created_at > $1$$, ARRAY['2025-06-01']);
RESET ROLE;
SELECT count(*) AS spy_calls FROM p17.calls;

-- estimates: an expression index's size from the expression's values over
-- the column's statistics, with btree deduplication, against the real
-- index (within 25%: the estimate counts whole pages, as the index has)
CREATE TABLE p17.customers AS
SELECT i AS id, (10 + i % 25)::text || '-' || lpad((i * 7919 % 1000)::text, 3, '0') || '-' ||
       lpad((i * 17 % 10000)::text, 4, '0') AS phone
  FROM generate_series(1, 15000) i;
VACUUM ANALYZE p17.customers;
CREATE TEMP TABLE estimate AS
SELECT est_size_bytes FROM perfopt.advise_query($$SELECT count(*) FROM p17.customers WHERE substring(phone from 1 for 2) = '13'$$)
 WHERE kind = 'expression';
CREATE INDEX customers_prefix ON p17.customers (substring(phone from 1 for 2));
SELECT e.est_size_bytes::float8 / pg_relation_size('p17.customers_prefix') BETWEEN 0.8 AND 1.25 AS within_25pct
  FROM estimate e;

-- a prefix pattern built from a parameter ("$1::text || '%'") is, with the
-- value bound, a prefix pattern: a text_pattern_ops range candidate
SELECT rank, kind, index_def
  FROM perfopt.advise_query($$SELECT id, phone FROM p17.customers WHERE phone LIKE $1::text || '%'$$,
                            ARRAY[['13-5'], ['21-07'], ['30-1']]);
-- with ORDER BY ... LIMIT the custom plans' costs choose between walking
-- the sort column's index and the pattern's range
SELECT rank, kind, index_def
  FROM perfopt.advise_query($$SELECT id, phone FROM p17.customers WHERE phone LIKE $1::text || '%' ORDER BY phone LIMIT 10$$,
                            ARRAY[['13-5'], ['21-07'], ['30-1']]);

DROP SCHEMA p17 CASCADE;
DROP OWNED BY p17_tenant;
DROP ROLE p17_tenant;
