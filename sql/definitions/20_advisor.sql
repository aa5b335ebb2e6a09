-- advisor: functions, views, triggers, policies and grants (the index advisor and drop candidates)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

CREATE OR REPLACE FUNCTION perfopt.recommend_indexes(
    budget_mb float8 DEFAULT NULL,
    min_benefit_pct float8 DEFAULT 1)
RETURNS TABLE (
    rank int,
    table_name regclass,
    index_def text,
    kind text,
    est_size_bytes bigint,
    benefit_pct float8,
    cost_before float8,
    cost_after float8,
    queryids bigint[],
    reason text)
AS 'MODULE_PATHNAME', 'perfopt_recommend_indexes'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE
-- every statement is planned as its own role with that role's own path
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.recommend_indexes(float8, float8) IS
'the best indexes for the workload of pg_stat_statements that the caller may see, each statement planned as its own role, within budget_mb, proven with hypothetical indexes';

CREATE OR REPLACE FUNCTION perfopt.recommend_indexes_for(
    queries text[],
    weights float8[] DEFAULT NULL,
    budget_mb float8 DEFAULT NULL,
    min_benefit_pct float8 DEFAULT 1)
RETURNS TABLE (
    rank int,
    table_name regclass,
    index_def text,
    kind text,
    est_size_bytes bigint,
    benefit_pct float8,
    cost_before float8,
    cost_after float8,
    queryids bigint[],
    reason text)
AS 'MODULE_PATHNAME', 'perfopt_recommend_indexes_for'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION perfopt.recommend_indexes_for(text[], float8[], float8, float8) IS
'the best indexes for a workload given as statements and weights (executions)';

CREATE OR REPLACE FUNCTION perfopt.advise_query(
    query text,
    min_benefit_pct float8 DEFAULT 1)
RETURNS TABLE (
    rank int,
    table_name regclass,
    index_def text,
    kind text,
    est_size_bytes bigint,
    benefit_pct float8,
    cost_before float8,
    cost_after float8,
    queryids bigint[],
    reason text)
AS 'MODULE_PATHNAME', 'perfopt_advise_query'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION perfopt.advise_query(text, float8) IS
'the indexes that make one statement cheaper, with its cost before and after';

CREATE OR REPLACE FUNCTION perfopt.last_advisor_run()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'perfopt_last_advisor_run'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.last_advisor_run() IS
'what the last index advisor run of this session did: statements, statements skipped because their role could not plan them (skipped_as_role), candidates, planner calls, cache hits, seconds';

CREATE OR REPLACE VIEW perfopt.index_recommendations AS
    SELECT * FROM perfopt.recommend_indexes();

COMMENT ON VIEW perfopt.index_recommendations IS
'recommend_indexes() with its defaults: no budget, indexes that remove at least 1% of the workload''s cost';

------------------------------------------------------------------------------
-- perfopt's own tables now exist: never propose dropping their indexes, nor
-- those of any extension's tables

CREATE OR REPLACE FUNCTION perfopt.relation_bytes(rel regclass) RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_relation_bytes_sql'
LANGUAGE C STRICT STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.relation_bytes(regclass) IS
'pg_relation_size(rel) from the files, without locking or opening the relation: for views over thousands of relations';

CREATE OR REPLACE VIEW perfopt.index_drop_candidates AS
WITH indexes AS (
    SELECT i.indexrelid, i.indrelid, i.indisunique, i.indisvalid, i.indisreplident,
           c.relam, n.nspname, c.relname,
           (string_to_array(i.indkey::text, ' ')::int2[])[1:i.indnkeyatts] AS keys,
           i.indnatts > i.indnkeyatts AS has_include,
           (string_to_array(i.indclass::text, ' ')::oid[])[1:i.indnkeyatts] AS classes,
           (string_to_array(i.indcollation::text, ' ')::oid[])[1:i.indnkeyatts] AS collations,
           (string_to_array(i.indoption::text, ' ')::int2[])[1:i.indnkeyatts] AS options,
           pg_get_expr(i.indexprs, i.indrelid) AS expressions,
           pg_get_expr(i.indpred, i.indrelid) AS predicate,
           EXISTS (SELECT 1 FROM pg_constraint k
                    WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) AS backs_constraint,
           s.idx_scan,
           t.seq_scan + coalesce(t.idx_scan, 0) AS table_reads
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
      LEFT JOIN pg_stat_user_tables t ON t.relid = i.indrelid
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'perfopt')
       AND n.nspname NOT LIKE 'pg\_toast%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indrelid
                          AND d.deptype = 'e')
),
reasons AS (
    SELECT x.indexrelid, 1 AS priority,
           'invalid: a failed CREATE INDEX CONCURRENTLY left it; no query uses it, yet every write still maintains it' AS reason
      FROM indexes x
     WHERE NOT x.indisvalid
    UNION ALL
    SELECT x.indexrelid, 2,
           format('duplicate of %s: the same definition', y.indexrelid::regclass)
      FROM indexes x
      JOIN indexes y ON y.indrelid = x.indrelid AND y.indexrelid <> x.indexrelid
       AND y.relam = x.relam AND y.keys = x.keys AND y.classes = x.classes
       AND y.collations = x.collations AND y.options = x.options
       AND y.expressions IS NOT DISTINCT FROM x.expressions
       AND y.predicate IS NOT DISTINCT FROM x.predicate
       AND y.has_include = x.has_include AND y.indisvalid
       AND (y.indisunique OR NOT x.indisunique)
     WHERE NOT x.backs_constraint
       -- of two equal ones, keep the one a constraint uses, else the older
       AND (y.backs_constraint OR y.indisunique AND NOT x.indisunique OR y.indexrelid < x.indexrelid)
    UNION ALL
    -- a btree x is redundant when its keys are a proper prefix of y's: each
    -- prefix of y is a row, so that the two meet on equalities (a hash or
    -- merge join, not a comparison of every pair of indexes)
    SELECT x.indexrelid, 3,
           format('redundant: %s starts with the same columns and serves the same queries', y.indexrelid::regclass)
      FROM indexes x
      JOIN (SELECT y.indexrelid, y.indrelid, y.relam, y.predicate,
                   y.keys[1:k] AS keys, y.classes[1:k] AS classes,
                   y.collations[1:k] AS collations, y.options[1:k] AS options
              FROM indexes y, generate_series(1, cardinality(y.keys) - 1) k
             WHERE y.indisvalid AND y.expressions IS NULL) y
        ON y.indrelid = x.indrelid AND y.relam = x.relam
       AND y.keys = x.keys AND y.classes = x.classes
       AND y.collations = x.collations AND y.options = x.options
       AND y.indexrelid <> x.indexrelid
       AND y.predicate IS NOT DISTINCT FROM x.predicate
     WHERE x.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
       AND NOT x.indisunique AND NOT x.has_include AND x.expressions IS NULL
    UNION ALL
    SELECT x.indexrelid, 4,
           format('unused: not scanned once since the statistics were reset, while its table was read %s times',
                  x.table_reads)
      FROM indexes x
     WHERE x.indisvalid AND x.idx_scan = 0 AND x.table_reads > 0 AND NOT x.indisunique
)
SELECT DISTINCT ON (x.indexrelid)
       x.indexrelid::regclass AS index_name,
       x.indrelid::regclass AS table_name,
       r.reason,
       perfopt.relation_bytes(x.indexrelid) AS size_bytes,
       format('DROP INDEX CONCURRENTLY %I.%I;', x.nspname, x.relname) AS drop_def
  FROM reasons r
  JOIN indexes x USING (indexrelid)
 WHERE NOT x.backs_constraint AND NOT x.indisreplident
 ORDER BY x.indexrelid, r.priority;

COMMENT ON VIEW perfopt.index_drop_candidates IS
'invalid, duplicate, redundant (covered prefix) and unused indexes, never one that backs a constraint';
