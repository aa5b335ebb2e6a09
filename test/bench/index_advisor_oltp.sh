#!/usr/bin/env bash
# Benchmark of the index advisor on an application workload: the lead
# management pages of test/sample/workload.pgbench (random parameters,
# reads and writes) over the insurance-leads schema, read from
# pg_stat_statements, against pg_qualstats_index_advisor() on the same
# workload in the same run.
#
#   bash test/bench/index_advisor_oltp.sh [LEADS] [SECONDS]
#
# LEADS defaults to 200000, SECONDS (each timed pgbench run) to 30.  Run as
# root; it starts and removes its own cluster.  It prints the advisor's
# figures, the recommended indexes of both tools, pgbench's throughput and
# per-statement latencies with no index but the keys, with perfopt's set
# and with pg_qualstats' set, and index sizes against the estimates.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

LEADS=${1:-200000}
SECONDS_RUN=${2:-30}
PORT=${PORT:-5436}
CLIENTS=2

require_root
install_packages
PERFOPT_PACKAGES=postgresql-15-pg-qualstats install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "jit = off" \
    "shared_preload_libraries = 'pg_stat_statements, perfopt, pg_qualstats'" \
    "pg_qualstats.sample_rate = 1" "shared_buffers = '512MB'"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
cp "$top"/test/sample/leads.sql "$top"/test/sample/workload.pgbench "$dir/"
chown postgres: "$dir"/*

echo "loading $LEADS leads ..."
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" -c "CREATE EXTENSION pg_qualstats"
q -v leads="$LEADS" -f "$dir/leads.sql" >/dev/null
q -c "VACUUM ANALYZE"
q -c "CREATE TABLE sizes (config text, index_def text, estimated bigint, real bigint)"
q -c "CREATE TABLE throughput (config text, tps float8)"
q -c "CREATE TABLE latencies (config text, statement text, ms float8)"

# Run the workload for SECONDS_RUN seconds; record throughput and the
# latency of each statement under config $1
run_workload() {
    local config=$1 out line
    out=$(as_postgres pgbench -h "$dir" -p "$PORT" -n -M simple -c "$CLIENTS" -T "$SECONDS_RUN" -r \
              -D leads="$LEADS" -f "$dir/workload.pgbench" postgres 2>&1)
    q -c "INSERT INTO throughput VALUES ('$config', $(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p'))"
    echo "$out" | sed -n 's/^ *\([0-9.]*\) *[0-9]* *\(SELECT\|UPDATE\|INSERT\)\(.*\)$/\1\t\2\3/p' \
        | while IFS=$'\t' read -r ms statement; do
            q -c "INSERT INTO latencies VALUES ('$config', \$s\$$(echo "$statement" | cut -c1-60)\$s\$, $ms)"
        done
}

echo "running the workload with the keys only (pg_stat_statements and pg_qualstats record it) ..."
q -c "SELECT pg_stat_statements_reset(), pg_qualstats_reset()" >/dev/null
run_workload keys_only

echo "asking both advisors ..."
q -c "CREATE TABLE perfopt_indexes AS
      SELECT rank, index_def, est_size_bytes AS estimated, kind, round(benefit_pct::numeric, 1) AS benefit_pct
        FROM perfopt.recommend_indexes() ORDER BY rank" \
  -c "CREATE TABLE advisor_run AS SELECT perfopt.last_advisor_run() AS run"
q -c "CREATE TABLE qualstats_indexes AS
      SELECT v #>> '{}' AS index_def, NULL::bigint AS estimated
        FROM json_array_elements(pg_qualstats_index_advisor()->'indexes') v"

echo "running it with perfopt's indexes ..."
create_index_set perfopt perfopt_indexes
run_workload perfopt
drop_added_indexes

echo "running it with pg_qualstats' indexes ..."
create_index_set pg_qualstats qualstats_indexes
run_workload pg_qualstats
drop_added_indexes

echo
echo "== the advisor's run on the workload of pg_stat_statements"
q -At -c "SELECT jsonb_pretty(run) FROM advisor_run"
echo "== perfopt's recommendations"
q -P footer=off -c "SELECT rank, kind, benefit_pct, index_def FROM perfopt_indexes ORDER BY rank"
echo "== pg_qualstats' recommendations"
q -P footer=off -c "SELECT index_def FROM qualstats_indexes"
echo "== throughput ($CLIENTS clients, $SECONDS_RUN s each, $LEADS leads)"
q -P footer=off -c "
SELECT config, round(tps::numeric, 1) AS tps,
       round((tps / (SELECT tps FROM throughput WHERE config = 'keys_only'))::numeric, 2) AS speedup
  FROM throughput ORDER BY tps"
echo "== latency per statement, ms"
q -P footer=off -c "
SELECT k.statement, k.ms AS keys_only, p.ms AS perfopt, s.ms AS pg_qualstats
  FROM latencies k
  LEFT JOIN latencies p ON p.statement = k.statement AND p.config = 'perfopt'
  LEFT JOIN latencies s ON s.statement = k.statement AND s.config = 'pg_qualstats'
 WHERE k.config = 'keys_only' ORDER BY k.ms DESC"
echo "== index sizes, real against estimated"
report_sizes
