-- metrics: functions, views, triggers, policies and grants (jobs, the metrics sampler, retention and latency percentiles)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

COMMENT ON TABLE perfopt.jobs IS
'jobs the perfopt launcher runs: SQL commands, each on its schedule (NULL: every perfopt.sample_interval)';
COMMENT ON COLUMN perfopt.jobs.failures IS
'consecutive failures; a failed job is retried after a jittered delay that doubles from 1 s up to its schedule';

COMMENT ON TABLE perfopt.job_runs IS
'one row per run of a job, kept for perfopt.job_history_retention';

COMMENT ON TABLE perfopt.metrics IS
'what the sampler records: one row per metric and entity ('''' for the whole server) per sample';

COMMENT ON TABLE perfopt.metrics_latest IS
'the latest value of every metric and entity recorded through perfopt.record_metrics';

-- The partition of perfopt.metrics for a day (UTC); made if missing
CREATE OR REPLACE FUNCTION perfopt.metrics_partition(day date) RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
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
    -- its own index: perfopt.metrics has none (see sql/tables/40_metrics.sql)
    EXECUTE format('CREATE INDEX ON perfopt.%I (metric, entity, ts)', name);
    RETURN format('perfopt.%I', name)::regclass;
END
$$;

COMMENT ON FUNCTION perfopt.metrics_partition(date) IS
'the daily partition of perfopt.metrics for a UTC day, created if missing';

CREATE OR REPLACE FUNCTION perfopt.record_metrics(ts timestamptz, metrics text[],
                                       entities text[], vals float8[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
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

CREATE OR REPLACE VIEW perfopt.live_metrics AS
    SELECT metric, entity, value, ts
      FROM perfopt.metrics_latest
     ORDER BY metric, entity;

COMMENT ON VIEW perfopt.live_metrics IS
'the latest value of every metric, with the time it was sampled';

CREATE OR REPLACE FUNCTION perfopt.sample_metrics() RETURNS int
AS 'MODULE_PATHNAME', 'perfopt_sample_metrics'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.sample_metrics() IS
'takes one sample of the server''s metrics into perfopt.metrics; the launcher calls it every perfopt.sample_interval';

------------------------------------------------------------------------------
-- Retention now also covers anomalies and capacity history

CREATE OR REPLACE FUNCTION perfopt.apply_retention(at timestamptz DEFAULT perfopt.now(),
                                                   keep_metrics interval DEFAULT NULL,
                                                   keep_runs interval DEFAULT NULL)
RETURNS TABLE (dropped_partitions int, skipped_partitions int,
               deleted_metrics bigint, deleted_runs bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
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
    DELETE FROM perfopt.cache_template_stats WHERE bucket < metrics_cutoff;

    -- anomalies and cleared alerts live as long as the metrics; the
    -- hourly capacity history at least 400 days
    DELETE FROM perfopt.anomalies WHERE resolved_at < metrics_cutoff;
    DELETE FROM perfopt.anomaly_progress WHERE analyzed_until < metrics_cutoff;
    DELETE FROM perfopt.capacity_alerts WHERE cleared_at < metrics_cutoff;
    DELETE FROM perfopt.capacity_history
     WHERE hour < least(metrics_cutoff, at - interval '400 days');

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

------------------------------------------------------------------------------
-- Latency percentiles per statement, from perfopt's executor hooks

CREATE OR REPLACE FUNCTION perfopt.query_latency(
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
LANGUAGE C STRICT VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW perfopt.query_latency AS
    SELECT l.queryid, l.calls, l.p50_ms, l.p95_ms, l.p99_ms,
           l.mean_ms, l.min_ms, l.max_ms, l.toplevel,
           d.datname AS database, s.query
      FROM perfopt.query_latency() l
      LEFT JOIN pg_database d ON d.oid = l.dbid
      LEFT JOIN (SELECT dbid, queryid, min(query) AS query
                   FROM perfopt.statement_texts
                  GROUP BY dbid, queryid) s
             ON s.dbid = l.dbid AND s.queryid = l.queryid;

COMMENT ON VIEW perfopt.query_latency IS
'latency percentiles per statement (executor time, as pg_stat_statements counts it) since the last reset';

CREATE OR REPLACE FUNCTION perfopt.query_latency_reset() RETURNS timestamptz
AS 'MODULE_PATHNAME', 'perfopt_query_latency_reset'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

-- The latency histogram of some statements, as (bucket, calls) pairs, and
-- the percentiles of such a histogram: two snapshots subtracted are a window
CREATE OR REPLACE FUNCTION perfopt.latency_counts(queryids bigint[], OUT bucket int, OUT calls bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_latency_counts'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.latency_counts(bigint[]) IS
'the latency histogram of the statements of this database with these queryids, as its non-empty (bucket, calls) pairs (internal)';

CREATE OR REPLACE FUNCTION perfopt.latency_quantiles(buckets int[], calls bigint[], q float8[])
RETURNS float8[]
AS 'MODULE_PATHNAME', 'perfopt_latency_quantiles'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.latency_quantiles(int[], bigint[], float8[]) IS
'the durations in ms at quantiles q of a histogram of (bucket, calls) pairs; NULL when it is empty (internal)';

COMMENT ON FUNCTION perfopt.query_latency_reset() IS
'forgets every latency histogram; returns the time of the reset';

-- Parameter samples per statement (issue 17), from perfopt's executor
-- hooks: shared memory only, each statement's sets shown only to whoever
-- may see its text in pg_stat_statements
CREATE OR REPLACE FUNCTION perfopt.statement_samples(
    OUT userid oid,
    OUT dbid oid,
    OUT queryid bigint,
    OUT params text[],
    OUT sampled_at timestamptz,
    OUT weight float8,
    OUT sampled bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_statement_samples'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.statement_samples() IS
'the parameter sets kept per statement, of the statements whose text the caller may see in pg_stat_statements';

CREATE OR REPLACE VIEW perfopt.statement_samples AS
    SELECT s.userid, s.dbid, s.queryid, s.params, s.sampled_at, s.weight, s.sampled
      FROM perfopt.statement_samples() s;

COMMENT ON VIEW perfopt.statement_samples IS
'real parameter sets of statements ($1 .. $n of pg_stat_statements'' text, as text), a reservoir per statement, weights summing to 1; only the statements the caller may see in pg_stat_statements';

CREATE OR REPLACE FUNCTION perfopt.statement_samples_info(
    OUT capacity int,
    OUT statements bigint,
    OUT sets_per_statement int,
    OUT skipped bigint,
    OUT evicted bigint,
    OUT reset_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'perfopt_statement_samples_info'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.statement_samples_info() IS
'how many statements the parameter samples hold and may hold, sets skipped as too big and statements evicted since the last reset (counts only)';

CREATE OR REPLACE FUNCTION perfopt.statement_samples_reset() RETURNS timestamptz
AS 'MODULE_PATHNAME', 'perfopt_statement_samples_reset'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.statement_samples_reset() IS
'forgets every parameter sample; returns the time of the reset';








-- Update scripts call it first: see src/perfopt.c
CREATE OR REPLACE FUNCTION perfopt.lock_for_update() RETURNS void
AS 'MODULE_PATHNAME', 'perfopt_lock_for_update'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.lock_for_update() IS
'locks perfopt against its own workers until the end of the transaction; update scripts call it first';
