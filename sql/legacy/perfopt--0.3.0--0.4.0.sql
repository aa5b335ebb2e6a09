/* perfopt--0.3.0--0.4.0.sql: jobs, the metrics sampler and latency percentiles */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION perfopt UPDATE TO '0.4.0'" to load this file. \quit

CREATE FUNCTION perfopt.now() RETURNS timestamptz
AS 'MODULE_PATHNAME', 'perfopt_now_sql'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION perfopt.now() IS
'the time perfopt''s jobs take as now: the real time unless perfopt.now_override is set';

------------------------------------------------------------------------------
-- Jobs: what the launcher runs, and what came of each run

CREATE TABLE perfopt.jobs (
    job_name text PRIMARY KEY,
    command text NOT NULL,
    schedule interval CHECK (schedule >= interval '1 second'),
    enabled boolean NOT NULL DEFAULT true,
    timeout interval NOT NULL DEFAULT interval '5 minutes'
        CHECK (timeout >= interval '0'),
    builtin boolean NOT NULL DEFAULT false,
    last_start timestamptz,
    last_finish timestamptz,
    last_status text CHECK (last_status IN ('running', 'succeeded', 'failed')),
    last_error text,
    last_duration_ms float8,
    failures int NOT NULL DEFAULT 0,
    next_run timestamptz
);

COMMENT ON TABLE perfopt.jobs IS
'jobs the perfopt launcher runs: SQL commands, each on its schedule (NULL: every perfopt.sample_interval)';
COMMENT ON COLUMN perfopt.jobs.failures IS
'consecutive failures; a failed job is retried after a jittered delay that doubles from 1 s up to its schedule';

CREATE TABLE perfopt.job_runs (
    run_id bigserial PRIMARY KEY,
    job_name text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    sqlstate text,
    message text,
    duration_ms float8
);

CREATE INDEX ON perfopt.job_runs (job_name, started_at);

COMMENT ON TABLE perfopt.job_runs IS
'one row per run of a job, kept for perfopt.job_history_retention';

-- jobs users add are dumped; the built-in ones come with CREATE EXTENSION
SELECT pg_catalog.pg_extension_config_dump('perfopt.jobs', 'WHERE NOT builtin');

------------------------------------------------------------------------------
-- Metrics: partitioned by day, so that retention drops whole partitions

CREATE TABLE perfopt.metrics (
    ts timestamptz NOT NULL,
    metric text NOT NULL,
    entity text NOT NULL DEFAULT '',
    value float8
) PARTITION BY RANGE (ts);

CREATE INDEX ON perfopt.metrics (metric, entity, ts);

-- rows of days that have no partition (imported series, say) land here
CREATE TABLE perfopt.metrics_default PARTITION OF perfopt.metrics DEFAULT;

COMMENT ON TABLE perfopt.metrics IS
'what the sampler records: one row per metric and entity ('''' for the whole server) per sample';

CREATE TABLE perfopt.metrics_latest (
    metric text NOT NULL,
    entity text NOT NULL,
    ts timestamptz NOT NULL,
    value float8,
    PRIMARY KEY (metric, entity)
);

COMMENT ON TABLE perfopt.metrics_latest IS
'the latest value of every metric and entity recorded through perfopt.record_metrics';

-- The partition of perfopt.metrics for a day (UTC); made if missing
CREATE FUNCTION perfopt.metrics_partition(day date) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'metrics_' || to_char(day, 'YYYYMMDD');
    rel regclass := to_regclass(format('perfopt.%I', name));
BEGIN
    IF rel IS NOT NULL THEN
        RETURN rel;
    END IF;
    EXECUTE format('CREATE TABLE perfopt.%I PARTITION OF perfopt.metrics'
                   ' FOR VALUES FROM (%L) TO (%L)',
                   name, day::timestamp AT TIME ZONE 'UTC',
                   (day + 1)::timestamp AT TIME ZONE 'UTC');
    RETURN format('perfopt.%I', name)::regclass;
END
$$;

COMMENT ON FUNCTION perfopt.metrics_partition(date) IS
'the daily partition of perfopt.metrics for a UTC day, created if missing';

CREATE FUNCTION perfopt.record_metrics(ts timestamptz, metrics text[],
                                       entities text[], vals float8[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    recorded bigint;
BEGIN
    IF cardinality(metrics) <> cardinality(entities)
       OR cardinality(metrics) <> cardinality(vals) THEN
        RAISE EXCEPTION 'metrics, entities and vals must have the same length'
            USING ERRCODE = 'array_subscript_error',
                  HINT = 'Pass one entity and one value per metric.';
    END IF;
    IF ts IS NULL THEN
        RAISE EXCEPTION 'ts must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the time the values were measured at.';
    END IF;

    -- a day whose rows already went to the default partition keeps them there
    BEGIN
        PERFORM perfopt.metrics_partition((ts AT TIME ZONE 'UTC')::date);
    EXCEPTION WHEN check_violation THEN
        NULL;
    END;

    INSERT INTO perfopt.metrics (ts, metric, entity, value)
    SELECT ts, m, coalesce(e, ''), v
      FROM unnest(metrics, entities, vals) AS u(m, e, v);
    GET DIAGNOSTICS recorded = ROW_COUNT;

    INSERT INTO perfopt.metrics_latest AS l (metric, entity, ts, value)
    SELECT DISTINCT ON (m, coalesce(e, '')) m, coalesce(e, ''), ts, v
      FROM unnest(metrics, entities, vals) WITH ORDINALITY AS u(m, e, v, i)
     ORDER BY m, coalesce(e, ''), i DESC
    ON CONFLICT (metric, entity) DO UPDATE
       SET ts = excluded.ts, value = excluded.value
     WHERE l.ts <= excluded.ts;

    RETURN recorded;
END
$$;

COMMENT ON FUNCTION perfopt.record_metrics(timestamptz, text[], text[], float8[]) IS
'records one value per (metric, entity) at ts into perfopt.metrics and perfopt.metrics_latest';

CREATE VIEW perfopt.live_metrics AS
    SELECT metric, entity, value, ts
      FROM perfopt.metrics_latest
     ORDER BY metric, entity;

COMMENT ON VIEW perfopt.live_metrics IS
'the latest value of every metric, with the time it was sampled';

CREATE FUNCTION perfopt.sample_metrics() RETURNS int
AS 'MODULE_PATHNAME', 'perfopt_sample_metrics'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION perfopt.sample_metrics() IS
'takes one sample of the server''s metrics into perfopt.metrics; the launcher calls it every perfopt.sample_interval';

-- Removes what is older than the retention settings, a little at a time
CREATE FUNCTION perfopt.apply_retention(at timestamptz DEFAULT perfopt.now(),
                                        keep_metrics interval DEFAULT NULL,
                                        keep_runs interval DEFAULT NULL)
RETURNS TABLE (dropped_partitions int, skipped_partitions int,
               deleted_metrics bigint, deleted_runs bigint)
LANGUAGE plpgsql AS $$
DECLARE
    metrics_cutoff timestamptz :=
        at - coalesce(keep_metrics, current_setting('perfopt.retention')::interval);
    runs_cutoff timestamptz :=
        at - coalesce(keep_runs, current_setting('perfopt.job_history_retention')::interval);
    part record;
    n bigint;
BEGIN
    dropped_partitions := 0;
    skipped_partitions := 0;
    deleted_metrics := 0;
    deleted_runs := 0;

    -- a partition goes when all of its day is older than the cutoff; the
    -- lock a DROP needs is waited for a second at most, then tried next time
    PERFORM set_config('lock_timeout', '1s', true);
    FOR part IN
        SELECT c.oid::regclass AS rel
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'perfopt.metrics'::regclass
           AND c.relname ~ '^metrics_[0-9]{8}$'
           AND (to_date(substr(c.relname, 9), 'YYYYMMDD') + 1)::timestamp
               AT TIME ZONE 'UTC' <= metrics_cutoff
         ORDER BY c.relname
    LOOP
        BEGIN
            EXECUTE format('DROP TABLE %s', part.rel);
            dropped_partitions := dropped_partitions + 1;
        EXCEPTION WHEN lock_not_available THEN
            skipped_partitions := skipped_partitions + 1;
        END;
    END LOOP;

    -- rows of days without a partition, in batches
    FOR i IN 1..10 LOOP
        DELETE FROM perfopt.metrics_default
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM perfopt.metrics_default
                                  WHERE ts < metrics_cutoff LIMIT 10000));
        GET DIAGNOSTICS n = ROW_COUNT;
        deleted_metrics := deleted_metrics + n;
        EXIT WHEN n < 10000;
    END LOOP;

    DELETE FROM perfopt.metrics_latest WHERE ts < metrics_cutoff;

    FOR i IN 1..10 LOOP
        DELETE FROM perfopt.job_runs
         WHERE run_id = ANY (ARRAY(SELECT run_id FROM perfopt.job_runs
                                    WHERE started_at < runs_cutoff
                                    ORDER BY run_id LIMIT 10000));
        GET DIAGNOSTICS n = ROW_COUNT;
        deleted_runs := deleted_runs + n;
        EXIT WHEN n < 10000;
    END LOOP;

    -- the partitions of today and tomorrow, ahead of the sampler
    PERFORM perfopt.metrics_partition((at AT TIME ZONE 'UTC')::date);
    PERFORM perfopt.metrics_partition((at AT TIME ZONE 'UTC')::date + 1);

    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION perfopt.apply_retention(timestamptz, interval, interval) IS
'drops metrics older than keep_metrics (perfopt.retention; by whole days) and job runs older than keep_runs (perfopt.job_history_retention)';

INSERT INTO perfopt.jobs (job_name, command, schedule, builtin) VALUES
    ('sample_metrics', 'SELECT perfopt.sample_metrics()', NULL, true),
    ('apply_retention', 'SELECT perfopt.apply_retention()', interval '1 hour', true);

------------------------------------------------------------------------------
-- Latency percentiles per statement, from perfopt's executor hooks

CREATE FUNCTION perfopt.query_latency(
    OUT dbid oid,
    OUT queryid bigint,
    OUT toplevel boolean,
    OUT calls bigint,
    OUT p50_ms float8,
    OUT p95_ms float8,
    OUT p99_ms float8,
    OUT mean_ms float8,
    OUT min_ms float8,
    OUT max_ms float8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_query_latency'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW perfopt.query_latency AS
    SELECT l.queryid, l.calls, l.p50_ms, l.p95_ms, l.p99_ms,
           l.mean_ms, l.min_ms, l.max_ms, l.toplevel,
           d.datname AS database, s.query
      FROM perfopt.query_latency() l
      LEFT JOIN pg_database d ON d.oid = l.dbid
      LEFT JOIN (SELECT dbid, queryid, min(query) AS query
                   FROM pg_stat_statements(true)
                  GROUP BY dbid, queryid) s
             ON s.dbid = l.dbid AND s.queryid = l.queryid;

COMMENT ON VIEW perfopt.query_latency IS
'latency percentiles per statement (executor time, as pg_stat_statements counts it) since the last reset';

CREATE FUNCTION perfopt.query_latency_reset() RETURNS timestamptz
AS 'MODULE_PATHNAME', 'perfopt_query_latency_reset'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION perfopt.query_latency_reset() IS
'forgets every latency histogram; returns the time of the reset';

REVOKE ALL ON FUNCTION perfopt.query_latency_reset() FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.sample_metrics() FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.record_metrics(timestamptz, text[], text[], float8[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.apply_retention(timestamptz, interval, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.metrics_partition(date) FROM PUBLIC;

-- monitoring roles read what the workers gather
GRANT SELECT ON perfopt.metrics, perfopt.metrics_latest, perfopt.live_metrics,
                perfopt.query_latency, perfopt.jobs, perfopt.job_runs
   TO pg_monitor;

------------------------------------------------------------------------------
-- perfopt's own tables now exist: never propose dropping their indexes, nor
-- those of any extension's tables

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
