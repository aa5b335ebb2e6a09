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

CREATE OR REPLACE FUNCTION perfopt.advise_query(
    query text,
    params text[],
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
AS 'MODULE_PATHNAME', 'perfopt_advise_query_params'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION perfopt.advise_query(text, text[], float8) IS
'the indexes that make one statement cheaper, costed on custom plans with the parameter sets given (a 1-D array is one set, a 2-D array one set per row)';

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

-- It resolves no name (a look-up by OID, then the files'), so, like
-- perfopt.now(), it pins no search_path: that would save and restore the
-- setting at every row, a third of its time over 20,000 indexes
CREATE OR REPLACE FUNCTION perfopt.relation_bytes(rel regclass) RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_relation_bytes_sql'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION perfopt.relation_bytes(regclass) IS
'pg_relation_size(rel) from the files, without locking or opening the relation: for views over thousands of relations';

-- pg_stat_get_numscans() read in one pass over the shared statistics for a
-- query's calls, when that reads what the look-ups read (src/common/stat_pass.c);
-- like relation_bytes, it resolves no name and pins no search_path
CREATE OR REPLACE FUNCTION perfopt.relation_scans(rel oid) RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_relation_scans_sql'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION perfopt.relation_scans(oid) IS
'pg_stat_get_numscans(rel): the first call of a query reads every relation''s count in one pass over the shared statistics (with stats_fetch_consistency none, or cache before the transaction''s first statistics read), else a look-up per call';

-- the tables index_drop_candidates reads the indexes of: those that can have
-- a candidate, found in one pass over pg_index (src/advisor/drop_set.c)
CREATE OR REPLACE FUNCTION perfopt.index_drop_suspects() RETURNS SETOF oid
AS 'MODULE_PATHNAME', 'perfopt_index_drop_suspects'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 1000
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.index_drop_suspects() IS
'the tables that can have a drop candidate, from pg_index and the scan counts: an invalid index, a non-unique index never scanned (and not attached to a partitioned index) in a table read since the statistics were reset (scanned, through any index, or partitioned), or two indexes that start with the same column (or both with an expression); a superset of the tables of perfopt.index_drop_candidates';

-- the indexes of those tables, with the columns of pg_index and pg_class the
-- view reads: each catalog in one pass, or through its index for each table
-- and index, whichever costs less (src/common/catalog.c)
CREATE OR REPLACE FUNCTION perfopt.index_drop_suspect_indexes()
RETURNS TABLE (
    indexrelid oid,
    indrelid oid,
    indnatts int2,
    indnkeyatts int2,
    indisunique boolean,
    indisprimary boolean,
    indisvalid boolean,
    indisreplident boolean,
    indkey int2vector,
    indcollation oidvector,
    indclass oidvector,
    indoption int2vector,
    indexprs pg_node_tree,
    indpred pg_node_tree,
    relam oid,
    relkind "char",
    relname text,
    nspname text,
    tree_scans bigint,
    tree_bytes bigint,
    tree_reads bigint)
AS 'MODULE_PATHNAME', 'perfopt_index_drop_suspect_indexes'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 1000
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.index_drop_suspect_indexes() IS
'the indexes of the tables perfopt.index_drop_suspects() names, with their pg_index columns and their pg_class access method, kind and name, and their schema''s name: what perfopt.index_drop_candidates reads of them; for a partitioned index, the scans and bytes of the indexes under it and the reads (sequential and index scans) of the tables under its table, summed as pg_stat_user_indexes and pg_stat_user_tables give them (NULL for another index)';

CREATE OR REPLACE FUNCTION perfopt.index_drop_safe_set(candidates regclass[], relies_on regclass[])
RETURNS regclass[]
AS 'MODULE_PATHNAME', 'perfopt_index_drop_safe_set'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
-- every statement is planned as its own role with that role's own path
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.index_drop_safe_set(regclass[], regclass[]) IS
'of the drop candidates, most deserving first, those that can be dropped together: none that an accepted one relies on (relies_on), none whose drop makes a statement of the workload the caller may see costlier';

CREATE OR REPLACE VIEW perfopt.index_drop_candidates AS
WITH
-- the view reads only the indexes of the tables that can have a candidate
-- (index_drop_suspect_indexes: those of index_drop_suspects, a table with an
-- invalid index, a non-unique index never scanned while the table was read,
-- or two indexes that start alike), so that its work follows the tables that
-- have candidates, not the catalog (at 10,000 tables with 300 candidates:
-- 600 indexes, not 20,000)
indexes AS (
    -- pg_stat_user_tables' seq_scan + idx_scan, idx_scan being a sum over
    -- the table's indexes (which all pass the filters below with it), over
    -- narrow rows; a partitioned table's, over its partitions
    SELECT x.*,
           CASE WHEN x.relkind = 'I' THEN x.tree_reads
                ELSE x.table_scans + sum(x.own_scans) OVER (PARTITION BY x.indrelid) END AS table_reads,
           -- whether the table has an index that can make another redundant
           -- (below), in the same window: most tables have none
           bool_or(x.indisvalid AND x.expressions IS NULL AND cardinality(x.keys) > 1)
               OVER (PARTITION BY x.indrelid) AS may_cover
      FROM (
    SELECT i.indexrelid, i.indrelid, i.indisunique, i.indisvalid, i.indisreplident,
           i.relam, i.relkind, i.nspname, i.relname,
           -- the vectors start at 0; a slice starts at 1, so arrays compare
           (i.indkey::int2[])[0:i.indnkeyatts - 1] AS keys,
           i.indnatts > i.indnkeyatts AS has_include,
           (i.indclass::oid[])[0:i.indnkeyatts - 1] AS classes,
           (i.indcollation::oid[])[0:i.indnkeyatts - 1] AS collations,
           (i.indoption::int2[])[0:i.indnkeyatts - 1] AS options,
           pg_get_expr(i.indexprs, i.indrelid) AS expressions,
           pg_get_expr(i.indpred, i.indrelid) AS predicate,
           -- joins, not EXISTS: the planner prices an EXISTS as a scan per
           -- index, which makes the view JIT-compile; a primary key's index
           -- is marked so, and only the few unique and exclusion constraints
           -- are joined (the primary keys were half of the indexes to join at
           -- 10,000 tables)
           (i.indisprimary OR k.conindid IS NOT NULL) AS backs_constraint,
           -- an index of a partition attached to its table's partitioned index
           -- goes only with that index
           h.inhrelid IS NOT NULL AS attached,
           -- this server's counts: scans on a standby are not seen here; the
           -- counters themselves, since pg_stat_user_indexes and
           -- pg_stat_user_tables group every table's indexes at every read
           -- (pg_stat_user_indexes lists the indexes of tables, matviews and
           -- TOAST tables: relkind 'i')
           -- a partitioned index's, summed over its partitions by
           -- index_drop_suspect_indexes() (without a lock on each, and
           -- without reading every table's statistics for each index, as
           -- pg_partition_tree() over pg_stat_user_indexes and
           -- pg_stat_user_tables did: 94 of the view's 290 ms with a table
           -- of 3,000 partitions)
           CASE i.relkind WHEN 'I' THEN coalesce(i.tree_scans, 0)
                          WHEN 'i' THEN perfopt.relation_scans(i.indexrelid) END AS idx_scan,
           perfopt.relation_scans(i.indexrelid) AS own_scans,
           perfopt.relation_scans(i.indrelid) AS table_scans,
           coalesce(i.tree_reads, 0) AS tree_reads,
           coalesce(i.tree_bytes, 0) AS tree_bytes
      FROM perfopt.index_drop_suspect_indexes() i
      LEFT JOIN (SELECT DISTINCT k.conindid FROM pg_constraint k WHERE k.contype IN ('u', 'x')) k
        ON k.conindid = i.indexrelid
      LEFT JOIN (SELECT DISTINCT h.inhrelid FROM pg_inherits h) h ON h.inhrelid = i.indexrelid
     WHERE i.nspname NOT IN ('pg_catalog', 'information_schema', 'perfopt')
       AND i.nspname NOT LIKE 'pg\_toast%'
       -- not the tables of an extension (a hashed list, not a sort of every
       -- index; found from the extensions, not by a scan of every dependency)
       AND i.indrelid NOT IN (SELECT d.objid FROM pg_extension e
                                JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
                               WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e')
           ) x
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
      -- the arrays compared once the table matches, not sorted on: a sort
      -- by four arrays of every index cost more than the comparisons
      JOIN indexes y ON y.indrelid = x.indrelid AND y.indexrelid <> x.indexrelid
       AND y.relam = x.relam AND (y.keys = x.keys AND y.classes = x.classes
       AND y.collations = x.collations AND y.options = x.options) IS TRUE
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
    -- a btree x is redundant when its keys are a proper prefix of those of
    -- a valid y: x and each proper prefix of y are grouped by what must be
    -- equal (one pass, where a join of every pair of a table's indexes
    -- was planned as a nested loop over all indexes); each x with each y
    SELECT c.candidate, 3, 'redundant', v.covering, v.scans,
           format('redundant: %s starts with the same columns and serves the same queries', v.covering::regclass)
      FROM (SELECT array_agg(p.candidate) FILTER (WHERE p.candidate IS NOT NULL) AS candidates,
                   array_agg(p.covering) FILTER (WHERE p.covering IS NOT NULL) AS coverings,
                   array_agg(p.scans) FILTER (WHERE p.covering IS NOT NULL) AS scans
              FROM (SELECT x.indexrelid AS candidate, NULL::oid AS covering, NULL::numeric AS scans,
                           x.indrelid, x.relam, x.predicate, x.keys, x.classes, x.collations, x.options
                      FROM indexes x
                     WHERE x.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
                       AND NOT x.indisunique AND NOT x.has_include AND x.expressions IS NULL
                       -- a group without a covering index is dropped below
                       AND x.may_cover
                    UNION ALL
                    SELECT NULL, y.indexrelid, y.idx_scan, y.indrelid, y.relam, y.predicate,
                           y.keys[1:k], y.classes[1:k], y.collations[1:k], y.options[1:k]
                      FROM indexes y, generate_series(1, cardinality(y.keys) - 1) k
                     WHERE y.indisvalid AND y.expressions IS NULL) p
             GROUP BY p.indrelid, p.relam, p.predicate, p.keys, p.classes, p.collations, p.options
            HAVING count(p.candidate) > 0 AND count(p.covering) > 0) g,
           unnest(g.candidates) c(candidate),
           unnest(g.coverings, g.scans) v(covering, scans)
    UNION ALL
    SELECT x.indexrelid, 4, 'unused', NULL, NULL,
           format('unused: not scanned once on this server since the statistics were reset, while its table was read %s times',
                  x.table_reads)
      FROM indexes x
     WHERE x.indisvalid AND x.idx_scan = 0 AND x.table_reads > 0 AND NOT x.indisunique
),
-- each index with its most serious reason and, of several indexes that make
-- it so, the one scanned most; sizes from the files (relation_bytes: no
-- lock, no relation opened), of the candidates only
candidates AS (
    SELECT DISTINCT ON (x.indexrelid)
           x.indexrelid, x.indrelid, x.nspname, x.relname, x.relkind,
           CASE WHEN x.relkind = 'I' THEN x.tree_bytes
                ELSE perfopt.relation_bytes(x.indexrelid) END AS size_bytes,
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
       -- with it, only without CONCURRENTLY; in the collation of the names
       -- it was made of (pg_class's), as before they came as text
       CASE WHEN d.relkind = 'I' THEN format('DROP INDEX %I.%I;', d.nspname, d.relname)
            ELSE format('DROP INDEX CONCURRENTLY %I.%I;', d.nspname, d.relname) END COLLATE "C" AS drop_def,
       d.reason_code
  FROM candidates d
 -- a semi-join: "= ANY (array)" searched the whole array for each candidate
 WHERE d.indexrelid IN (SELECT pg_catalog.unnest(indexes::oid[]) FROM safe)
 ORDER BY d.indexrelid;

COMMENT ON VIEW perfopt.index_drop_candidates IS
'invalid, duplicate, redundant (covered prefix) and unused indexes that are safe to drop together: never one that backs a constraint, nor one that a kept index or a statement of the workload the reader may see needs; scans are this server''s only, not its standbys''';
