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

CREATE OR REPLACE FUNCTION perfopt.index_build_statements(table_name regclass, index_def text, index_name text)
RETURNS text
AS 'MODULE_PATHNAME', 'perfopt_index_build_statements_sql'
LANGUAGE C STRICT STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.index_build_statements(regclass, text, text) IS
'the statements that build index_def''s index on table_name, named index_name, without blocking writes: CREATE INDEX CONCURRENTLY, or for a partitioned table CREATE INDEX ON ONLY the parent, each partition''s index CONCURRENTLY and ALTER INDEX ... ATTACH PARTITION';

CREATE OR REPLACE VIEW perfopt.index_recommendations AS
    SELECT * FROM perfopt.recommend_indexes();

COMMENT ON VIEW perfopt.index_recommendations IS
'recommend_indexes() with its defaults: no budget, indexes that remove at least 1% of the workload''s cost';

------------------------------------------------------------------------------
-- perfopt's own tables now exist: never propose dropping their indexes, nor
-- those of any extension's tables

CREATE OR REPLACE FUNCTION perfopt.index_drop_safe_set(candidates regclass[], relies_on regclass[])
RETURNS regclass[]
AS 'MODULE_PATHNAME', 'perfopt_index_drop_safe_set'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
-- every statement is planned as its own role with that role's own path
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.index_drop_safe_set(regclass[], regclass[]) IS
'of the drop candidates, most deserving first, those that can be dropped together: none that an accepted one relies on (relies_on), none whose drop makes a statement of the workload the caller may see costlier';

CREATE OR REPLACE VIEW perfopt.index_drop_candidates AS
WITH indexes AS (
    SELECT i.indexrelid, i.indrelid, i.indisunique, i.indisvalid, i.indisreplident,
           c.relam, c.relkind, n.nspname, c.relname,
           (string_to_array(i.indkey::text, ' ')::int2[])[1:i.indnkeyatts] AS keys,
           i.indnatts > i.indnkeyatts AS has_include,
           (string_to_array(i.indclass::text, ' ')::oid[])[1:i.indnkeyatts] AS classes,
           (string_to_array(i.indcollation::text, ' ')::oid[])[1:i.indnkeyatts] AS collations,
           (string_to_array(i.indoption::text, ' ')::int2[])[1:i.indnkeyatts] AS options,
           pg_get_expr(i.indexprs, i.indrelid) AS expressions,
           pg_get_expr(i.indpred, i.indrelid) AS predicate,
           EXISTS (SELECT 1 FROM pg_constraint k
                    WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) AS backs_constraint,
           -- an index of a partition attached to its table's partitioned index
           -- goes only with that index
           EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) AS attached,
           -- this server's counts: scans on a standby are not seen here
           CASE WHEN c.relkind = 'I'
                THEN (SELECT sum(si.idx_scan) FROM pg_partition_tree(i.indexrelid) p
                        JOIN pg_stat_user_indexes si ON si.indexrelid = p.relid)
                ELSE s.idx_scan END AS idx_scan,
           CASE WHEN c.relkind = 'I'
                THEN (SELECT sum(st.seq_scan + coalesce(st.idx_scan, 0)) FROM pg_partition_tree(i.indrelid) p
                        JOIN pg_stat_user_tables st ON st.relid = p.relid)
                ELSE t.seq_scan + coalesce(t.idx_scan, 0) END AS table_reads,
           CASE WHEN c.relkind = 'I'
                THEN (SELECT sum(pg_relation_size(p.relid)) FROM pg_partition_tree(i.indexrelid) p)::bigint
                ELSE pg_relation_size(i.indexrelid) END AS size_bytes
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
    SELECT x.indexrelid, 1 AS priority, 'invalid' AS reason_code, NULL::oid AS relies_on, NULL::numeric AS relies_scans,
           'invalid: a failed CREATE INDEX CONCURRENTLY left it; no query uses it, yet every write still maintains it' AS reason
      FROM indexes x
     WHERE NOT x.indisvalid
    UNION ALL
    SELECT x.indexrelid, 2, 'duplicate', y.indexrelid, y.idx_scan,
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
       -- of two equal ones, keep the one a constraint uses, else the unique
       -- one, else the one attached to a partitioned index, else the one in
       -- use (scanned more), else the older
       AND (y.backs_constraint, y.indisunique, y.attached, coalesce(y.idx_scan, 0), x.indexrelid)
         > (x.backs_constraint, x.indisunique, x.attached, coalesce(x.idx_scan, 0), y.indexrelid)
    UNION ALL
    SELECT x.indexrelid, 3, 'redundant', y.indexrelid, y.idx_scan,
           format('redundant: %s starts with the same columns and serves the same queries', y.indexrelid::regclass)
      FROM indexes x
      JOIN indexes y ON y.indrelid = x.indrelid AND y.indexrelid <> x.indexrelid
       AND y.relam = x.relam AND y.indisvalid
       AND cardinality(y.keys) > cardinality(x.keys)
       AND y.keys[1:cardinality(x.keys)] = x.keys
       AND y.classes[1:cardinality(x.classes)] = x.classes
       AND y.collations[1:cardinality(x.collations)] = x.collations
       AND y.options[1:cardinality(x.options)] = x.options
       AND x.expressions IS NULL AND y.expressions IS NULL
       AND y.predicate IS NOT DISTINCT FROM x.predicate
     WHERE x.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
       AND NOT x.indisunique AND NOT x.has_include
    UNION ALL
    SELECT x.indexrelid, 4, 'unused', NULL, NULL,
           format('unused: not scanned once on this server since the statistics were reset, while its table was read %s times',
                  x.table_reads)
      FROM indexes x
     WHERE x.indisvalid AND x.idx_scan = 0 AND x.table_reads > 0 AND NOT x.indisunique
),
-- each index with its most serious reason and, of several indexes that make
-- it so, the one scanned most
candidates AS (
    SELECT DISTINCT ON (x.indexrelid)
           x.indexrelid, x.indrelid, x.nspname, x.relname, x.relkind, x.size_bytes,
           coalesce(x.idx_scan, 0) AS idx_scan, r.priority, r.reason_code, r.reason, r.relies_on
      FROM reasons r
      JOIN indexes x USING (indexrelid)
     WHERE NOT x.backs_constraint AND NOT x.indisreplident AND NOT x.attached
     ORDER BY x.indexrelid, r.priority, r.relies_scans DESC NULLS LAST, r.relies_on
),
-- those safe to drop together, tried in this order: invalid ones, then
-- duplicates, then the least scanned, the largest first
safe AS MATERIALIZED (
    SELECT perfopt.index_drop_safe_set(
               coalesce(array_agg(indexrelid::regclass ORDER BY least(priority, 3), idx_scan, size_bytes DESC, indexrelid), '{}'),
               coalesce(array_agg(relies_on::regclass ORDER BY least(priority, 3), idx_scan, size_bytes DESC, indexrelid), '{}'))
           AS indexes
      FROM candidates
)
SELECT d.indexrelid::regclass AS index_name,
       d.indrelid::regclass AS table_name,
       d.reason,
       d.size_bytes,
       -- PostgreSQL drops a partitioned index, and its partitions' indexes
       -- with it, only without CONCURRENTLY
       CASE WHEN d.relkind = 'I' THEN format('DROP INDEX %I.%I;', d.nspname, d.relname)
            ELSE format('DROP INDEX CONCURRENTLY %I.%I;', d.nspname, d.relname) END AS drop_def,
       d.reason_code
  FROM candidates d
 WHERE d.indexrelid = ANY ((SELECT indexes FROM safe)::oid[])
 ORDER BY d.indexrelid;

COMMENT ON VIEW perfopt.index_drop_candidates IS
'invalid, duplicate, redundant (covered prefix) and unused indexes that are safe to drop together: never one that backs a constraint, nor one that a kept index or a statement of the workload the reader may see needs; scans are this server''s only, not its standbys''';
