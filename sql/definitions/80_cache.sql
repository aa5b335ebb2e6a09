-- cache: functions, views, triggers, policies and grants (the Redis cache layer)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

COMMENT ON TABLE perfopt.cache_strategies IS
'cache strategies: the TTL of an entry in the application''s memory cache and in Redis; a higher priority is warmed first';

COMMENT ON TABLE perfopt.cache_watches IS
'tables whose committed row changes invalidate Redis keys made from key_template';

COMMENT ON TABLE perfopt.cache_invalidations IS
'the outbox: Redis keys (or SCAN patterns) to invalidate, one row per committed transaction';

CREATE OR REPLACE VIEW perfopt.cache_outbox AS
SELECT o.id, k.key, o.pattern, o.queued_at,
       1000 * extract(epoch FROM clock_timestamp() - o.queued_at) AS age_ms
  FROM perfopt.cache_invalidations o, unnest(o.keys) AS k(key);

COMMENT ON VIEW perfopt.cache_outbox IS
'invalidations that are queued and not yet confirmed by Redis, one row per key, oldest first by id';

------------------------------------------------------------------------------
-- Functions

-- runs as the writer: it keeps keys in the backend's memory, and the
-- outbox row is written at commit straight into the heap, without a
-- permission check (src/cache/outbox.c)
CREATE OR REPLACE FUNCTION perfopt.cache_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'perfopt_cache_trigger'
LANGUAGE C SECURITY INVOKER;

COMMENT ON FUNCTION perfopt.cache_trigger() IS
'trigger of cache_watch: the keys its arguments (key templates) make from the old and the new row join the transaction''s pending keys, written as one outbox row at commit';

CREATE OR REPLACE FUNCTION perfopt.cache_template_columns(rel regclass, key_template text) RETURNS text[]
AS 'MODULE_PATHNAME', 'perfopt_cache_template_columns'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.cache_template_columns(regclass, text) IS
'the columns a key template names, checked against the relation (NULL: not checked); an error for a malformed template';

CREATE OR REPLACE FUNCTION perfopt.cache_watch(rel regclass, key_template text,
                                    strategy text DEFAULT 'api_response')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[];
    templates text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = rel AND relkind IN ('r', 'p')) THEN
        RAISE EXCEPTION 'relation % is not a table', rel
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'cache_watch watches ordinary and partitioned tables.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM perfopt.cache_strategies s WHERE s.name = strategy) THEN
        RAISE EXCEPTION 'cache strategy "%" does not exist', strategy
            USING ERRCODE = 'undefined_object',
                  HINT = 'Use one of perfopt.cache_strategies, or insert a new one there.';
    END IF;
    cols := perfopt.cache_template_columns(rel, key_template);

    INSERT INTO perfopt.cache_watches (rel, key_template, strategy, columns)
    VALUES (rel, key_template, strategy, cols)
    ON CONFLICT ON CONSTRAINT cache_watches_pkey
    DO UPDATE SET strategy = EXCLUDED.strategy;

    PERFORM perfopt.cache_retrigger(rel);
END
$$;

COMMENT ON FUNCTION perfopt.cache_watch(regclass, text, text) IS
'invalidate the Redis keys made from key_template (''lead:{id}'') with the old and the new row of every committed change to rel';

-- (re)create the triggers of rel with all its templates as arguments
CREATE OR REPLACE FUNCTION perfopt.cache_retrigger(rel regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'perfopt_cache_invalidate') THEN
        EXECUTE format('DROP TRIGGER perfopt_cache_invalidate ON %s', rel);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'perfopt_cache_truncate') THEN
        EXECUTE format('DROP TRIGGER perfopt_cache_truncate ON %s', rel);
    END IF;
    -- the deferred flush trigger of 1.1.0's first builds: the outbox row is
    -- now written at PRE_COMMIT
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'perfopt_cache_flush') THEN
        EXECUTE format('DROP TRIGGER perfopt_cache_flush ON %s', rel);
    END IF;
    SELECT string_agg(quote_literal(key_template), ', ' ORDER BY key_template)
      INTO args FROM perfopt.cache_watches w WHERE w.rel = cache_retrigger.rel;
    IF args IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER perfopt_cache_invalidate AFTER INSERT OR UPDATE OR DELETE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION perfopt.cache_trigger(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER perfopt_cache_truncate AFTER TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION perfopt.cache_trigger(%s)', rel, args);
END
$$;

CREATE OR REPLACE FUNCTION perfopt.cache_unwatch(rel regclass, key_template text DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed int;
BEGIN
    DELETE FROM perfopt.cache_watches w
     WHERE w.rel = cache_unwatch.rel
       AND (cache_unwatch.key_template IS NULL OR w.key_template = cache_unwatch.key_template);
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM perfopt.cache_retrigger(rel);
    RETURN removed;
END
$$;

COMMENT ON FUNCTION perfopt.cache_unwatch(regclass, text) IS
'stop invalidating keys for rel (all its templates, or the one given); returns how many watches it removed';

CREATE OR REPLACE FUNCTION perfopt.cache_invalidate(pattern text) RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_cache_invalidate'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.cache_invalidate(text) IS
'queue the invalidation of every Redis key matching a glob pattern (SCAN MATCH), done once the transaction commits';

COMMENT ON TABLE perfopt.cache_warmers IS
'queries whose most read keys (Redis OBJECT FREQ at least min_freq) cache_rewarm sets again once less than refresh_pct of their TTL is left';

CREATE OR REPLACE FUNCTION perfopt.cache_warm(strategy text, key_template text, query text,
                                   keep_warm boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_cache_warm'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION perfopt.cache_warm(text, text, text, boolean) IS
'SET one Redis key per row of query (from key_template), the row as JSON, expiring after the strategy''s redis_ttl; keep_warm: also register it in cache_warmers';

CREATE OR REPLACE FUNCTION perfopt.cache_rewarm() RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_cache_rewarm'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.cache_rewarm() IS
'for each enabled warmer, SET again the keys Redis counts as read most (OBJECT FREQ, an LFU maxmemory-policy) before they expire; returns the keys set';

CREATE OR REPLACE FUNCTION perfopt.cache_redis_stats(
    OUT connected boolean, OUT hits bigint, OUT misses bigint, OUT keys bigint,
    OUT used_memory_bytes bigint, OUT error text, OUT own_hits bigint, OUT own_misses bigint)
AS 'MODULE_PATHNAME', 'perfopt_cache_redis_stats'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.cache_redis_stats() IS
'Redis INFO and DBSIZE: keyspace hits and misses less perfopt''s own lookups (cache_rewarm''s OBJECT FREQ and TTL, in own_hits and own_misses), keys, memory; error when Redis cannot be reached';

CREATE OR REPLACE FUNCTION perfopt.cache_worker_state(
    OUT worker_pid int, OUT redis_connected boolean, OUT invalidations_sent bigint,
    OUT batches_sent bigint, OUT last_sent_at timestamptz,
    OUT last_error text, OUT last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'perfopt_cache_worker_state'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW perfopt.cache_metrics AS
SELECT r.hits, r.misses,
       CASE WHEN r.hits + r.misses > 0
            THEN round(100.0 * r.hits / (r.hits + r.misses), 2)::float8 END AS hit_rate_pct,
       r.keys,
       w.invalidations_sent,
       o.depth AS outbox_depth,
       o.oldest_age_ms,
       coalesce(w.last_error, r.error) AS last_error,
       CASE WHEN w.last_error IS NOT NULL THEN w.last_error_at
            WHEN r.error IS NOT NULL THEN now() END AS last_error_at,
       w.redis_connected AS worker_connected,
       w.worker_pid,
       w.last_sent_at,
       r.used_memory_bytes,
       r.own_hits,
       r.own_misses
  FROM perfopt.cache_redis_stats() r,
       perfopt.cache_worker_state() w,
       (SELECT coalesce(sum(cardinality(keys)), 0)::bigint AS depth,
               1000 * extract(epoch FROM clock_timestamp() - min(queued_at)) AS oldest_age_ms
          FROM perfopt.cache_invalidations) o;

COMMENT ON VIEW perfopt.cache_metrics IS
'the application''s Redis hits, misses and hit rate (INFO stats less perfopt''s own lookups, in own_hits and own_misses), keys, invalidations sent by the worker, the outbox, and the last error';

-- only cache_watch attaches the trigger: attached by anyone else, it could
-- invalidate any key; writers need no privilege on it to fire it

-- watched tables get the triggers of this release; nothing to do on install
SELECT perfopt.cache_retrigger(w.rel)
  FROM (SELECT DISTINCT rel FROM perfopt.cache_watches) w
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) w.rel;

------------------------------------------------------------------------------
-- Cache advice: how often each template's data changes, how often its keys
-- are read, and the TTL that fits its change rate

COMMENT ON TABLE perfopt.cache_hit_samples IS
'the last window cache_hit_rates() measured per key template: reads and misses, for cache_advice''s hit rate';

COMMENT ON TABLE perfopt.cache_template_stats IS
'invalidated keys per watched key template and hour, counted by the cache worker as it sends them';

COMMENT ON COLUMN perfopt.cache_strategies.adaptive IS
'cache_warm and cache_rewarm set the TTL cache_advice recommends for the key template, within min_ttl and max_ttl, instead of redis_ttl';

-- Internal (superusers): no Redis, so cache_warm may use it.  The keys of a
-- template are estimated from the table's statistics: the distinct values
-- of its one column (pg_statistic), or the table's rows for several.  A key
-- changes on average every keys * span / invalidations; for changes that
-- come at random (a Poisson process) the median time between two is that
-- mean times ln 2, and the share of entries invalidated before a TTL t
-- expires is 1 - exp(-t / mean).
CREATE OR REPLACE VIEW perfopt.cache_template_changes AS
WITH w AS (
    SELECT DISTINCT ON (w.key_template) w.key_template, w.rel, w.strategy, w.columns
      FROM perfopt.cache_watches w
     ORDER BY w.key_template, w.created_at, w.rel
), st AS (
    SELECT s.key_template, sum(s.invalidations)::bigint AS invalidations,
           min(s.first_at) AS first_at
      FROM perfopt.cache_template_stats s
     GROUP BY s.key_template
), k AS (
    SELECT w.*, st.invalidations, st.first_at,
           CASE WHEN pg_catalog.cardinality(w.columns) = 1 THEN
               (SELECT CASE WHEN s.stadistinct > 0 THEN s.stadistinct::float8
                            ELSE -s.stadistinct * c.reltuples END
                  FROM pg_catalog.pg_statistic s
                  JOIN pg_catalog.pg_attribute a
                    ON a.attrelid = s.starelid AND a.attnum = s.staattnum
                 WHERE s.starelid = w.rel AND a.attname = w.columns[1]
                 ORDER BY s.stainherit DESC LIMIT 1)
           END AS distinct_values,
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::float8 END AS table_rows
      FROM w LEFT JOIN st USING (key_template)
      LEFT JOIN pg_catalog.pg_class c ON c.oid = w.rel
), m AS (
    SELECT k.*, coalesce(k.distinct_values, k.table_rows) AS keys_estimate,
           greatest(extract(epoch FROM now() - k.first_at), 1) AS span_s
      FROM k
)
SELECT m.key_template, m.rel, m.strategy,
       coalesce(m.invalidations, 0) AS invalidations,
       m.first_at AS counted_since,
       round(m.keys_estimate) AS keys_estimate,
       CASE WHEN m.invalidations > 0 AND m.keys_estimate > 0
            THEN m.keys_estimate * m.span_s / m.invalidations END AS mean_change_interval_s,
       m.span_s
  FROM m;

COMMENT ON VIEW perfopt.cache_template_changes IS
'internal: per watched key template, invalidations counted since when, the keys estimated from the table''s statistics, and the mean time between two changes of one key';

-- the TTL cache_warm and cache_rewarm set: redis_ttl, or for an adaptive
-- strategy and a watched template the median time between two changes of
-- a key, within min_ttl and max_ttl (max_ttl when none was seen)
CREATE OR REPLACE FUNCTION perfopt.cache_strategy_ttl(strategy text, key_template text)
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN s.adaptive AND c.key_template IS NOT NULL THEN
           greatest(s.min_ttl, least(s.max_ttl,
               coalesce(make_interval(secs => c.mean_change_interval_s * ln(2)), s.max_ttl)))
       ELSE s.redis_ttl END
  FROM perfopt.cache_strategies s
  LEFT JOIN perfopt.cache_template_changes c ON c.key_template = $2
 WHERE s.name = $1
$$;

COMMENT ON FUNCTION perfopt.cache_strategy_ttl(text, text) IS
'the Redis TTL cache_warm sets for a strategy and key template: redis_ttl, or the adaptive one within min_ttl and max_ttl';

CREATE OR REPLACE FUNCTION perfopt.cache_template_reads(sample int DEFAULT 100,
    OUT key_template text, OUT sampled_keys int, OUT avg_lfu_freq float8,
    OUT reads_per_key float8, OUT reason text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_cache_template_reads'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.cache_template_reads(int) IS
'per watched key template: a SCAN sample of its keys in Redis, their mean LFU counter (OBJECT FREQ) and the reads per key it stands for; counts only, never a key';

CREATE OR REPLACE FUNCTION perfopt.cache_hit_rates(sample_seconds float8 DEFAULT 5,
    OUT strategy text, OUT key_template text, OUT reads bigint, OUT misses bigint,
    OUT hits bigint, OUT hit_rate_pct float8, OUT reason text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_cache_hit_rates'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.cache_hit_rates(float8) IS
'per watched key template and per strategy (key_template NULL): the keys read (MONITOR) and missed (key-miss events, notify-keyspace-events E and m) over sample_seconds, and the hit rate; counts only, never a key';

CREATE OR REPLACE VIEW perfopt.cache_advice AS
SELECT c.key_template, c.strategy, c.invalidations,
       round((c.invalidations / (c.span_s / 3600))::numeric, 1)::float8 AS invalidations_per_hour,
       c.keys_estimate,
       make_interval(secs => round(c.mean_change_interval_s::numeric, 3)) AS mean_change_interval,
       s.redis_ttl,
       round((100 * (1 - exp(-least(extract(epoch FROM s.redis_ttl) / c.mean_change_interval_s, 700))))::numeric,
             1)::float8 AS invalidated_before_expiry_pct,
       r.sampled_keys,
       round(r.reads_per_key::numeric, 1)::float8 AS reads_per_key,
       CASE WHEN h.reads > 0
            THEN round(100.0 * (h.reads - least(h.misses, h.reads)) / h.reads, 2)::float8 END AS hit_rate_pct,
       date_trunc('milliseconds', greatest(s.min_ttl, least(s.max_ttl,
           coalesce(make_interval(secs => c.mean_change_interval_s * ln(2)), s.max_ttl))))
           AS recommended_ttl,
       s.adaptive,
       concat_ws('; ',
           CASE WHEN c.invalidations = 0 THEN 'no change counted yet: the longest TTL (max_ttl)'
                WHEN c.keys_estimate IS NULL THEN 'the table was never analyzed: its keys are not known'
                ELSE 'the median time between two changes of a key, within min_ttl and max_ttl' END,
           r.reason,
           CASE WHEN h.key_template IS NULL
                THEN 'hit rate per template: measured over a window by cache_hit_rates(sample_seconds), which needs Redis''s key-miss events (notify-keyspace-events E and m)'
                ELSE format('hit rate: %s reads, %s misses over %s s at %s (the last cache_hit_rates window)',
                            h.reads, least(h.misses, h.reads), h.sample_seconds,
                            to_char(h.measured_at, 'YYYY-MM-DD HH24:MI:SS TZ')) END)
           AS reason
  FROM perfopt.cache_template_changes c
  JOIN perfopt.cache_strategies s ON s.name = c.strategy
  LEFT JOIN perfopt.cache_template_reads(100) r ON r.key_template = c.key_template
  LEFT JOIN perfopt.cache_hit_samples h ON h.key_template = c.key_template;

COMMENT ON VIEW perfopt.cache_advice IS
'per watched key template: invalidations, the mean time between two changes of a key, the share of entries invalidated before redis_ttl, reads (LFU sample), the recommended TTL and why';
