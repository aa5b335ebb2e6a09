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

-- It resolves no name (a look-up by OID, then the files'), so, like
-- perfopt.now(), it pins no search_path: that would save and restore the
-- setting at every row, a third of its time over 20,000 indexes
CREATE OR REPLACE FUNCTION perfopt.relation_bytes(rel regclass) RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_relation_bytes_sql'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION perfopt.relation_bytes(regclass) IS
'pg_relation_size(rel) from the files, without locking or opening the relation: for views over thousands of relations';

CREATE OR REPLACE VIEW perfopt.index_drop_candidates AS
WITH indexes AS (
    -- pg_stat_user_tables' seq_scan + idx_scan, idx_scan being a sum over
    -- the table's indexes (which all pass the filters below with it), over
    -- narrow rows
    SELECT x.*, x.table_scans + sum(x.own_scans) OVER (PARTITION BY x.indrelid) AS table_reads
      FROM (
    SELECT i.indexrelid, i.indrelid, i.indisunique, i.indisvalid, i.indisreplident,
           c.relam, n.nspname, c.relname,
           -- the vectors start at 0; a slice starts at 1, so arrays compare
           (i.indkey::int2[])[0:i.indnkeyatts - 1] AS keys,
           i.indnatts > i.indnkeyatts AS has_include,
           (i.indclass::oid[])[0:i.indnkeyatts - 1] AS classes,
           (i.indcollation::oid[])[0:i.indnkeyatts - 1] AS collations,
           (i.indoption::int2[])[0:i.indnkeyatts - 1] AS options,
           pg_get_expr(i.indexprs, i.indrelid) AS expressions,
           pg_get_expr(i.indpred, i.indrelid) AS predicate,
           -- a join, not EXISTS: that one the planner prices as a scan of
           -- pg_constraint per index, which makes the view JIT-compile
           k.conindid IS NOT NULL AS backs_constraint,
           -- the counters themselves: pg_stat_user_indexes and
           -- pg_stat_user_tables group every table's indexes at every read
           -- (pg_stat_user_indexes lists the indexes of tables, matviews and
           -- TOAST tables: relkind 'i', not a partitioned index's 'I')
           CASE WHEN c.relkind = 'i' THEN pg_stat_get_numscans(i.indexrelid) END AS idx_scan,
           pg_stat_get_numscans(i.indexrelid) AS own_scans,
           pg_stat_get_numscans(i.indrelid) AS table_scans
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN (SELECT DISTINCT k.conindid FROM pg_constraint k WHERE k.contype IN ('p', 'u', 'x')) k
        ON k.conindid = i.indexrelid
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'perfopt')
       AND n.nspname NOT LIKE 'pg\_toast%'
       -- not the tables of an extension (a hashed list, not a sort of every index)
       AND i.indrelid NOT IN (SELECT d.objid FROM pg_depend d
                               WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e')
           ) x
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
    -- a btree x is redundant when its keys are a proper prefix of those of
    -- a valid y: x and each proper prefix of y are grouped by what must be
    -- equal (one pass, where a join of every pair of a table's indexes
    -- was planned as a nested loop over all indexes)
    SELECT r.candidate, 3,
           format('redundant: %s starts with the same columns and serves the same queries', g.covering::regclass)
      FROM (SELECT array_agg(p.candidate) FILTER (WHERE p.candidate IS NOT NULL) AS candidates,
                   min(p.covering) AS covering
              FROM (SELECT x.indexrelid AS candidate, NULL::oid AS covering, x.indrelid, x.relam,
                           x.predicate, x.keys, x.classes, x.collations, x.options
                      FROM indexes x
                     WHERE x.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
                       AND NOT x.indisunique AND NOT x.has_include AND x.expressions IS NULL
                    UNION ALL
                    SELECT NULL, y.indexrelid, y.indrelid, y.relam, y.predicate,
                           y.keys[1:k], y.classes[1:k], y.collations[1:k], y.options[1:k]
                      FROM indexes y, generate_series(1, cardinality(y.keys) - 1) k
                     WHERE y.indisvalid AND y.expressions IS NULL) p
             GROUP BY p.indrelid, p.relam, p.predicate, p.keys, p.classes, p.collations, p.options
            HAVING count(p.candidate) > 0 AND count(p.covering) > 0) g,
           unnest(g.candidates) r(candidate)
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
