-- perfopt comes with what it requires
CREATE EXTENSION perfopt CASCADE;
SELECT extname FROM pg_extension WHERE extname IN ('perfopt', 'pg_stat_statements', 'hypopg') ORDER BY 1;

-- the sample schema, small enough (20,000 leads) that ANALYZE reads every
-- row and the statistics, hence the plans, are the same on every run
\set leads 20000
\set ECHO none
\set QUIET on
\i test/sample/leads.sql
\set QUIET off
\set ECHO all
SELECT count(*) AS leads FROM leads;

-- helpers shared by the tests

-- codes of the recommendations analyze_query makes for a statement
CREATE FUNCTION rec_codes(query text) RETURNS text[]
LANGUAGE sql AS $$
    SELECT coalesce(array_agg(r->>'code' ORDER BY r->>'code'), '{}')
      FROM perfopt.analyze_query(query) a, jsonb_array_elements(a.recommendations) r
$$;

-- what analyze_query raises for a statement: SQLSTATE and message, or ok
CREATE FUNCTION try_analyze(query text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM perfopt.analyze_query(query);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- the planner's own estimate for a statement, from a plain EXPLAIN
CREATE FUNCTION explain_cost(query text) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN (plan->0->'Plan'->>'Total Cost')::float8;
END
$$;
