-- analysis: functions, views, triggers, policies and grants (query analysis and slow queries)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

GRANT USAGE ON SCHEMA perfopt TO PUBLIC;

-- pg_stat_statements lives in whichever schema it was installed in, and
-- perfopt's functions resolve names in pg_catalog only: they reach it
-- through these views, made with its schema spelt out.  Functions run as
-- the caller, so each caller sees what pg_stat_statements shows it.
DO $$
DECLARE
    pgss name := (SELECT n.nspname
                    FROM pg_catalog.pg_extension e
                    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
                   WHERE e.extname OPERATOR(pg_catalog.=) 'pg_stat_statements');
BEGIN
    EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW perfopt.statement_stats WITH (security_invoker = true) AS '
                              'SELECT * FROM %I.pg_stat_statements(false)', pgss);
    EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW perfopt.statement_texts WITH (security_invoker = true) AS '
                              'SELECT userid, dbid, toplevel, queryid, query FROM %I.pg_stat_statements(true)', pgss);
    EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW perfopt.statement_stats_info WITH (security_invoker = true) AS '
                              'SELECT * FROM %I.pg_stat_statements_info', pgss);
END
$$;

COMMENT ON VIEW perfopt.statement_stats IS
'pg_stat_statements(false) of whichever schema it is installed in, as the caller sees it (internal)';
COMMENT ON VIEW perfopt.statement_texts IS
'the texts of pg_stat_statements, as the caller may see them (internal)';
COMMENT ON VIEW perfopt.statement_stats_info IS
'pg_stat_statements_info of whichever schema it is installed in (internal)';


CREATE OR REPLACE FUNCTION perfopt.analyze_query(query text)
RETURNS TABLE (
    pattern text,
    complexity int,
    impact text,
    total_cost float8,
    plan_rows float8,
    features jsonb,
    recommendations jsonb)
AS 'MODULE_PATHNAME', 'perfopt_analyze_query'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION perfopt.analyze_query(text) IS
'complexity (1-10), impact and recommendations of one statement, from its generic plan; never executes it';

CREATE OR REPLACE FUNCTION perfopt.slow_queries(
    OUT queryid bigint,
    OUT query text,
    OUT calls bigint,
    OUT mean_ms float8,
    OUT p95_ms float8,
    OUT total_ms float8,
    OUT time_share_pct float8,
    OUT complexity int,
    OUT impact text,
    OUT recommendations jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_slow_queries'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
-- every statement is analyzed as its own role with that role's own path
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW perfopt.slow_queries AS
    SELECT * FROM perfopt.slow_queries();

COMMENT ON VIEW perfopt.slow_queries IS
'statements of pg_stat_statements that the caller may see whose mean time is at least perfopt.slow_query_ms, each analyzed as the role that ran it';
