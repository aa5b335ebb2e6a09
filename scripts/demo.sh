#!/usr/bin/env bash
# perfopt's demo: installs what is missing, builds and installs perfopt,
# starts a throwaway PostgreSQL 15 cluster with perfopt preloaded, loads an
# insurance-leads schema, runs an application workload on it with pgbench,
# and prints what perfopt finds; then, with a throwaway redis-server on a
# free loopback port, shows one cache invalidation.  Leaves nothing
# running.  Run as root on Debian 12.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"

LEADS=${LEADS:-100000}
PORT=${PORT:-5433}

require_root
install_packages
echo "== building and installing perfopt"
build_and_install "$top"

dir=$(postgres_tempdir demo)
redis_pid=""
trap '[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; stop_cluster "$dir"; rm -rf "$dir"' EXIT

# a throwaway Redis for the cache layer, on a free loopback port
rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# (publishing key-miss events, as a DBA would turn on for cache_hit_rates)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --notify-keyspace-events Em --logfile "$dir/redis.log" --daemonize no >/dev/null &
redis_pid=$!

echo "== starting a throwaway cluster in $dir"
start_cluster "$dir" "$PORT" "perfopt.database = 'leads'" "perfopt.sample_interval = 5s" \
    "perfopt.redis_port = $rport"
psql_demo() { as_postgres psql -h "$dir" -p "$PORT" -d leads -X -v ON_ERROR_STOP=1 "$@"; }

echo "== loading the sample schema ($LEADS leads) and running the application workload (pgbench, 2 clients)"
load_sample_database "$dir" "$PORT" leads "$LEADS"

cat <<'TEXT'

== What perfopt finds

The slowest statements of the workload (perfopt.slow_queries; the threshold
perfopt.slow_query_ms is lowered from 500 ms to 5 ms for a small database):
TEXT
psql_demo -q -c "SET perfopt.slow_query_ms = 5" -c "
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 70) AS query, calls,
       round(mean_ms::numeric, 1) AS mean_ms, round(time_share_pct::numeric, 1) AS share_pct,
       complexity, impact,
       (SELECT string_agg(r->>'code', ', ') FROM jsonb_array_elements(recommendations) r) AS problems
  FROM perfopt.slow_queries ORDER BY total_ms DESC"

echo "What to change, statement by statement (perfopt.analyze_query on each):"
psql_demo -q -At -c "SET perfopt.slow_query_ms = 5" -c "
SELECT format(E'\n%s\n  complexity %s, impact %s, estimated cost %s%s',
              regexp_replace(s.query, '\s+', ' ', 'g'), a.complexity, a.impact, round(a.total_cost::numeric),
              (SELECT string_agg(format(E'\n  - [%s] %s', r->>'severity', r->>'message'), '')
                 FROM jsonb_array_elements(a.recommendations) r))
  FROM perfopt.slow_queries s, LATERAL perfopt.analyze_query(s.query) a
 WHERE jsonb_array_length(a.recommendations) > 0
 ORDER BY s.total_ms DESC"
cat <<'TEXT'

The indexes that make this workload cheapest, proven by the planner with hypothetical
indexes, maintenance on the workload's writes counted (perfopt.recommend_indexes):
TEXT
psql_demo -q -c "CREATE TEMP TABLE recommended AS SELECT * FROM perfopt.recommend_indexes()" -c "
SELECT rank, kind, round(benefit_pct::numeric, 1) AS benefit_pct,
       pg_size_pretty(est_size_bytes) AS size, index_def
  FROM recommended ORDER BY rank" -c '\pset format unaligned' -c '\pset tuples_only on' -c "
SELECT format('%s. %s', rank, reason) FROM recommended ORDER BY rank" -c "
SELECT format(E'\nThe advisor looked at %s statements and %s candidate indexes, planned %s times in %s s;\n'
              'with these indexes the workload''s estimated cost falls from %s to %s.',
              r->>'statements', r->>'candidates', r->>'planner_calls', r->>'seconds',
              round((r->>'workload_cost_before')::numeric), round((r->>'workload_cost_after')::numeric))
  FROM perfopt.last_advisor_run() r"

cat <<'TEXT'

Table health, worst first (perfopt.table_health, from statistics only; the
workload's updates and deletes left dead rows behind):
TEXT
psql_demo -q -c "SELECT pg_stat_force_next_flush()" >/dev/null
psql_demo -q -c "
SELECT table_name, health_score AS score, round(est_bloat_pct::numeric, 1) AS bloat_pct,
       round(dead_tuple_pct::numeric, 1) AS dead_pct, round(seq_scan_pct::numeric) AS seq_scan_pct,
       round(cache_hit_pct::numeric, 1) AS cache_hit_pct,
       (SELECT string_agg(r->>'statement', ' ') FROM jsonb_array_elements(recommendations) r) AS fix
  FROM perfopt.table_health ORDER BY health_score, table_name::text"

cat <<'TEXT'
Connection pool advice (perfopt.pool_recommendation, sampling the backends for 3 s
while the workload runs again with 8 clients):
TEXT
as_postgres pgbench -h "$dir" -p "$PORT" -n -M simple -c 8 -T 6 -D leads="$LEADS" \
    -f "$dir/workload.pgbench" leads >/dev/null 2>&1 &
pgbench_pid=$!
sleep 1
psql_demo -q -c "SELECT setting, current_value, recommended, reason FROM perfopt.pool_recommendation(3)"
wait "$pgbench_pid" || true

cat <<'TEXT'

What the metrics sampler recorded with no one asking (perfopt.live_metrics; it samples
every perfopt.sample_interval, here 5 s, into perfopt.metrics):
TEXT
psql_demo -q -c "
SELECT metric, entity, round(value::numeric, 2) AS value, to_char(ts, 'HH24:MI:SS') AS at
  FROM perfopt.live_metrics
 WHERE metric IN ('transactions_per_sec', 'rows_fetched_per_sec', 'cache_hit_ratio', 'database_size_bytes',
                  'wal_bytes_per_sec', 'oldest_xact_age_sec', 'disk_free_bytes', 'latency_p95_ms',
                  'statements_per_sec')
   AND entity IN ('', 'leads', 'data_directory')
 ORDER BY metric"
psql_demo -q -At -c "
SELECT format('%s samples of %s metrics so far; the launcher ran %s jobs, %s failed.',
              (SELECT count(DISTINCT ts) FROM perfopt.metrics),
              (SELECT count(DISTINCT metric) FROM perfopt.metrics),
              (SELECT count(*) FROM perfopt.job_runs),
              (SELECT count(*) FROM perfopt.job_runs WHERE status = 'failed'))"

cat <<'TEXT'

Latency percentiles per statement, from perfopt's executor hooks (perfopt.query_latency):
TEXT
psql_demo -q -c "
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS query, calls,
       round(p50_ms::numeric, 3) AS p50_ms, round(p95_ms::numeric, 3) AS p95_ms,
       round(p99_ms::numeric, 3) AS p99_ms, round(max_ms::numeric, 3) AS max_ms
  FROM perfopt.query_latency
 WHERE database = 'leads' AND toplevel AND query !~ 'perfopt|pg_stat'
 ORDER BY p95_ms * calls DESC LIMIT 6"

cat <<TEXT

The Redis cache layer (redis-server on 127.0.0.1:$rport): watch leads, subscribe to the channel,
move lead 34 (of agent 3) to agent 7, and see its keys invalidated at commit:
TEXT
psql_demo -q -At -c "SELECT perfopt.cache_watch('leads', 'lead:{id}', 'user_data'),
                            perfopt.cache_watch('leads', 'agent:{agent_id}:leads')" >/dev/null
psql_demo -q -At -c "SELECT perfopt.cache_warm('user_data', 'lead:{id}',
                            'SELECT id, email, status, agent_id FROM leads WHERE id <= 100')" >/dev/null
echo "redis> GET lead:34"
redis-cli -p "$rport" GET lead:34
timeout 3 redis-cli -p "$rport" SUBSCRIBE perfopt:invalidate > "$dir/channel.out" &
sub_pid=$!
sleep 0.3
psql_demo -q -c "UPDATE leads SET agent_id = 7 WHERE id = 34"
wait "$sub_pid" || true
echo "perfopt:invalidate> $(tail -n 1 "$dir/channel.out")"
echo "redis> EXISTS lead:34"
redis-cli -p "$rport" EXISTS lead:34
psql_demo -q -c "SELECT keys, invalidations_sent, outbox_depth, last_error FROM perfopt.cache_metrics"

# issue 20: cache advice for one template (from the invalidations just sent)
cat <<'TEXT'

Cache advice (perfopt.cache_advice): how often an agent's list changes, and the TTL that fits:
TEXT
psql_demo -q -c "SELECT key_template, invalidations, keys_estimate, mean_change_interval, redis_ttl,
       invalidated_before_expiry_pct AS stale_pct, recommended_ttl
  FROM perfopt.cache_advice WHERE key_template = 'agent:{agent_id}:leads'"

cat <<'TEXT'

Hit rates per key template and strategy (perfopt.cache_hit_rates(3): Redis's key-miss events and MONITOR
for 3 s, while an application reads leads 1 to 40, of which 1 to 100 were warmed and 34 invalidated, and 101 to 110):
TEXT
psql_demo -q -c "SELECT strategy, key_template, reads, misses, hits, hit_rate_pct
  FROM perfopt.cache_hit_rates(3) ORDER BY strategy, key_template NULLS LAST" &
hit_pid=$!
for _ in $(seq 1 50); do   # until the window has begun: a client in MONITOR
    redis-cli -p "$rport" CLIENT LIST | grep -q 'flags=O' && break
    sleep 0.1
done
{ for i in $(seq 1 40) $(seq 101 110); do echo "GET lead:$i"; done; } | redis-cli -p "$rport" >/dev/null
wait "$hit_pid"

cat <<'TEXT'

The orchestrator's health score and its plan (perfopt.run_optimization_cycle(); the seeded
rules are dry runs, so nothing was changed):
TEXT
psql_demo -q -At -c "SET client_min_messages = warning" -c "SELECT perfopt.run_optimization_cycle()" >/dev/null
psql_demo -q -c "SELECT component, score, status FROM perfopt.health() ORDER BY score, component"
psql_demo -q -c "SET client_min_messages = warning" -c "
SELECT priority, category, action, target, left(coalesce(statement, reason), 70) AS what
  FROM perfopt.optimization_plan() LIMIT 8"

# issue 20: one measured outcome (a trial of the advisor's best index)
cat <<'TEXT'

A measured outcome: a trial of the advisor's best index, built by the launcher, the workload run
again, and the window after closed by a cycle perfopt.outcome_window later (perfopt.action_outcomes):
TEXT
psql_demo -q -At -c "SET client_min_messages = warning" \
    -c "SELECT perfopt.optimize('create_index', 'auto', false, '{\"trial\": true}')" >/dev/null
for _ in $(seq 1 60); do
    [ "$(psql_demo -q -At -c "SELECT count(*) FROM perfopt.action_log WHERE outcome IN ('queued', 'running')")" = 0 ] && break
    sleep 0.5
done
as_postgres pgbench -h "$dir" -p "$PORT" -n -M simple -c 2 -t 150 -D leads="$LEADS" \
    -f "$dir/workload.pgbench" leads >/dev/null 2>&1
psql_demo -q -At -c "SET client_min_messages = warning" \
    -c "SELECT perfopt.run_optimization_cycle(now() + current_setting('perfopt.outcome_window')::interval + interval '1 minute')" >/dev/null
psql_demo -q -c "
SELECT l.details->>'index' AS index, o.verdict, o.decision,
       round((o.measured #>> '{reads,mean_ms_before}')::numeric, 3) AS read_ms_before,
       round((o.measured #>> '{reads,mean_ms_after}')::numeric, 3) AS read_ms_after,
       round(o.benefit_pct::numeric, 1) AS benefit_pct, round(o.confidence::numeric, 3) AS confidence,
       round(o.monthly_saving::numeric, 2) AS monthly_saving
  FROM perfopt.action_outcomes o JOIN perfopt.action_log l ON l.id = o.action_id
 WHERE o.trial ORDER BY o.action_id DESC LIMIT 1"
echo "What the plan's next steps cost per month, done and not done, with their risk (perfopt.price_* settings):"
psql_demo -q -c "SET client_min_messages = warning" -c "
SELECT action, target, monthly_cost_doing AS doing, monthly_cost_not_doing AS not_doing, roi, risk
  FROM perfopt.optimization_plan() LIMIT 4"

echo
echo "== done: the cluster and Redis are stopped and removed"
