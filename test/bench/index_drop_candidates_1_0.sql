-- perfopt.index_drop_candidates as 1.0.0 defined it (each row judged alone), for
-- test/bench/index_drop_set.sh to compare against
CREATE VIEW drop_candidates_1_0 AS
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
    SELECT x.indexrelid, 3,
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
       pg_relation_size(x.indexrelid) AS size_bytes,
       format('DROP INDEX CONCURRENTLY %I.%I;', x.nspname, x.relname) AS drop_def
  FROM reasons r
  JOIN indexes x USING (indexrelid)
 WHERE NOT x.backs_constraint AND NOT x.indisreplident
 ORDER BY x.indexrelid, r.priority;
