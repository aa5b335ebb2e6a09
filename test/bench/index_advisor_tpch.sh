#!/usr/bin/env bash
# Benchmark of the index advisor on the 22 TPC-H-derived queries, against
# pg_qualstats_index_advisor() on the same workload in the same run.
#
#   bash test/bench/index_advisor_tpch.sh [TPCH_DIR] [SCALE] [RUNS]
#
# TPCH_DIR defaults to ../shared/data/tpch, SCALE to 0.1, RUNS (timed runs of
# each query, median taken) to 3.  Run as root; it starts and removes its
# own cluster (parallel query and JIT off, statement_timeout 60 s for the
# timed runs) and takes 10 to 20 minutes, most of it running Q17 and Q20
# without indexes.  It prints:
#  1. the workload's estimated cost with the chosen indexes over without,
#     at budgets of 2, 5, 10 and 25 MB, with and without Q2, Q17 and Q20,
#     with the advisor's run time, planner calls and cost-cache hits;
#  2. the measured run time of the 22 queries with no index but the keys,
#     with perfopt's 25 MB set, and with pg_qualstats' set;
#  3. each index's real size against the advisor's estimate.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

TPCH=${1:-$top/../shared/data/tpch}
SCALE=${2:-0.1}
RUNS=${3:-3}
PORT=${PORT:-5435}
TIMEOUT_MS=60000

[ -f "$TPCH/schema_gen.sql" ] && [ -d "$TPCH/queries" ] \
    || die "TPC-H data not found in $TPCH (give its path as the first argument)"

require_root
install_packages
PERFOPT_PACKAGES=postgresql-15-pg-qualstats install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "jit = off" "max_parallel_workers_per_gather = 0" \
    "shared_preload_libraries = 'pg_stat_statements, perfopt, pg_qualstats'" \
    "pg_qualstats.sample_rate = 1" "shared_buffers = '512MB'"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "loading TPC-H-like data at scale $SCALE ..."
cp "$TPCH/schema_gen.sql" "$dir/"
chown postgres: "$dir/schema_gen.sql"
q -v sf="$SCALE" -f "$dir/schema_gen.sql" >/dev/null 2>&1
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" \
  -c "CREATE EXTENSION pg_qualstats" -c "VACUUM ANALYZE"

# the statements, one file each, loaded into bench_queries
tpch_statements "$TPCH" "$dir"
q -f "$dir/load.sql"
q -c "CREATE TABLE timings (config text, name text, run int, ms float8, timed_out boolean);"
q -c "CREATE TABLE sizes (config text, index_def text, estimated bigint, real bigint);"

# Time every query RUNS times as its own statement (EXPLAIN ANALYZE's
# execution time, row counting only), after one untimed run.
time_workload() {
    local config=$1 f name run json ms
    for f in "$dir"/q/*.sql; do
        name=$(basename "$f" .sql)
        for run in $(seq 0 "$RUNS"); do
            json=$(q -At -c "SET statement_timeout = $TIMEOUT_MS" \
                     -c "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) $(cat "$f")" 2>/dev/null) || json=""
            [ "$run" = 0 ] && continue
            ms=$(echo "$json" | sed -n 's/.*"Execution Time": \([0-9.]*\).*/\1/p')
            if [ -n "$ms" ]; then
                q -c "INSERT INTO timings VALUES ('$config', '$name', $run, $ms, false)"
            else
                q -c "INSERT INTO timings VALUES ('$config', '$name', $run, $TIMEOUT_MS, true)"
            fi
        done
    done
}

# Time the workload with the indexes of table $2, then drop them
try_indexes() {
    create_index_set "$1" "$2"
    time_workload "$1"
    drop_added_indexes
}

echo "1. estimated workload cost under budgets ..."
q -c "
CREATE TABLE estimates (budget_mb float8, workload text, cost_before float8, cost_after float8,
                        indexes int, seconds float8, planner_calls int, cache_hit_pct float8);
DO \$\$
DECLARE
    budget float8;
    subset text;
    run jsonb;
    n int;
BEGIN
    FOREACH budget IN ARRAY ARRAY[2, 5, 10, 25] LOOP
        FOREACH subset IN ARRAY ARRAY['all 22', 'without Q2, Q17, Q20'] LOOP
            SELECT count(*) INTO n
              FROM perfopt.recommend_indexes_for(
                       ARRAY(SELECT sql FROM bench_queries
                              WHERE subset = 'all 22' OR name NOT IN ('q02', 'q17', 'q20')
                              ORDER BY name), NULL, budget, 0);
            run := perfopt.last_advisor_run();
            INSERT INTO estimates VALUES (budget, subset, (run->>'workload_cost_before')::float8,
                                          (run->>'workload_cost_after')::float8, n,
                                          (run->>'seconds')::float8, (run->>'planner_calls')::int,
                                          (run->>'cache_hit_pct')::float8);
        END LOOP;
    END LOOP;
END \$\$"

echo "2. timing the workload with the keys only (and collecting pg_qualstats' quals) ..."
q -c "SELECT pg_qualstats_reset()" >/dev/null
time_workload baseline

echo "   with perfopt's 25 MB set ..."
q -c "CREATE TABLE perfopt_indexes AS
      SELECT index_def, est_size_bytes AS estimated
        FROM perfopt.recommend_indexes_for(ARRAY(SELECT sql FROM bench_queries ORDER BY name), NULL, 25, 0)
       ORDER BY rank"
try_indexes perfopt perfopt_indexes

echo "   with pg_qualstats' set ..."
q -c "CREATE TABLE qualstats_indexes AS
      SELECT v #>> '{}' AS index_def, NULL::bigint AS estimated
        FROM json_array_elements(pg_qualstats_index_advisor()->'indexes') v"
try_indexes qualstats qualstats_indexes

echo
echo "== 1. estimated workload cost with the chosen indexes / without (TPC-H-like, scale $SCALE)"
q -P footer=off -c "
SELECT workload, budget_mb, indexes, round((cost_after / cost_before)::numeric, 4) AS cost_ratio,
       round((100 * (1 - cost_after / cost_before))::numeric, 1) AS cut_pct,
       round(seconds::numeric, 2) AS advisor_s, planner_calls, round(cache_hit_pct::numeric, 1) AS cache_hit_pct
  FROM estimates ORDER BY workload, budget_mb"

echo "== 2. measured run time, median of $RUNS runs, ms (timeouts count $TIMEOUT_MS ms)"
q -P footer=off -c "
CREATE VIEW medians AS
SELECT config, name, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms, bool_or(timed_out) AS timed_out
  FROM timings GROUP BY config, name;
SELECT b.name, round(b.ms::numeric, 1) AS keys_only, round(p.ms::numeric, 1) AS perfopt,
       round(s.ms::numeric, 1) AS pg_qualstats, b.timed_out OR p.timed_out OR s.timed_out AS timeout
  FROM medians b JOIN medians p ON p.name = b.name AND p.config = 'perfopt'
  JOIN medians s ON s.name = b.name AND s.config = 'qualstats'
 WHERE b.config = 'baseline' ORDER BY b.name"
q -P footer=off -c "
SELECT config, round(sum(ms)::numeric) AS total_ms,
       round((100 * (1 - sum(ms) / (SELECT sum(ms) FROM medians WHERE config = 'baseline')))::numeric, 1) AS cut_pct
  FROM medians GROUP BY config ORDER BY total_ms DESC"
q -At -c "
SELECT 'runtime left by perfopt / left by pg_qualstats: ' ||
       round(((SELECT sum(ms) FROM medians WHERE config = 'perfopt') /
              (SELECT sum(ms) FROM medians WHERE config = 'qualstats'))::numeric, 3)"

echo "== 3. index sizes, real against estimated"
report_sizes
echo "targets: within 25 MB, perfopt cuts the measured runtime by at least 95% and leaves at most half"
echo "of what pg_qualstats' set leaves; the advisor answers in under 10 s"
