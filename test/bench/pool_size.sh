#!/usr/bin/env bash
# Benchmark of pool_recommendation against measured throughput: pgbench
# read-only (select-only) and read-write (TPC-B-like) at 1, 2, 4, 8, 16, 32
# and 64 clients, and the pool size perfopt recommends while the same load
# runs with 32 clients.
#
#   bash test/bench/pool_size.sh [SCALE] [SECONDS] [ROUNDS]
#
# SCALE is pgbench's scale factor (default 20, about 300 MB: it fits in
# memory), SECONDS each run's length (default 10), ROUNDS how many times
# the whole curve is measured, the median taken (default 3): the machine is
# shared and a single run is noisy.  Run as root; it starts
# and removes its own cluster.  pgbench runs on the same machine, as a
# pooler's clients would not: its own CPU use is part of what is measured.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

SCALE=${1:-20}
SECONDS_RUN=${2:-10}
ROUNDS=${3:-3}
PORT=${PORT:-5438}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "max_connections = 150" "shared_buffers = '512MB'"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
bench() { as_postgres pgbench -h "$dir" -p "$PORT" -n -j 2 "$@" postgres 2>/dev/null; }

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
echo "initializing pgbench at scale $SCALE ..."
as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s "$SCALE" postgres >/dev/null 2>&1
q -c "VACUUM ANALYZE"
q -c "CREATE TABLE runs (workload text, clients int, tps float8)"
q -c "CREATE VIEW curve AS SELECT workload, clients, percentile_cont(0.5) WITHIN GROUP (ORDER BY tps) AS tps
        FROM runs GROUP BY workload, clients"
q -c "CREATE TABLE advice (workload text, pool int, reason text)"

for workload in read-only read-write; do
    flags=""
    [ "$workload" = read-only ] && flags="-S"
    bench $flags -c 8 -T 5 >/dev/null    # warm up
    for round in $(seq "$ROUNDS"); do
        for clients in 1 2 4 8 16 32 64; do
            tps=$(bench $flags -c "$clients" -T "$SECONDS_RUN" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            q -c "INSERT INTO runs VALUES ('$workload', $clients, $tps)"
            echo "$workload, round $round, $clients clients: $tps tps"
        done
    done

    # the recommendation, while the load runs with 32 clients
    bench $flags -c 32 -T $((SECONDS_RUN + 10)) >/dev/null &
    sleep 3
    q -c "INSERT INTO advice SELECT '$workload', recommended::int, reason
            FROM perfopt.pool_recommendation(5) WHERE setting = 'pool_size'"
    wait
    pool=$(q -At -c "SELECT pool FROM advice WHERE workload = '$workload'")
    if [ "$(q -At -c "SELECT count(*) FROM curve WHERE workload = '$workload' AND clients = $pool")" = 0 ]; then
        for round in $(seq "$ROUNDS"); do
            tps=$(bench $flags -c "$pool" -T "$SECONDS_RUN" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            q -c "INSERT INTO runs VALUES ('$workload', $pool, $tps)"
        done
    fi
done

echo
echo "== throughput by clients, median of $ROUNDS runs (pgbench -j 2, $SECONDS_RUN s each, scale $SCALE, $(nproc) cores)"
q -P footer=off -c "
SELECT clients, round(max(tps) FILTER (WHERE workload = 'read-only')) AS read_only_tps,
       round(max(tps) FILTER (WHERE workload = 'read-write')) AS read_write_tps
  FROM curve GROUP BY clients ORDER BY clients"
echo "== perfopt's pool size under 32 clients, against the best measured"
q -P footer=off -c "
SELECT a.workload, a.pool AS recommended,
       (SELECT clients FROM curve c WHERE c.workload = a.workload ORDER BY tps DESC LIMIT 1) AS best_clients,
       round((SELECT tps FROM curve c WHERE c.workload = a.workload AND c.clients = a.pool)) AS tps_at_recommended,
       round((SELECT max(tps) FROM curve c WHERE c.workload = a.workload)) AS best_tps,
       round((100 * (SELECT tps FROM curve c WHERE c.workload = a.workload AND c.clients = a.pool) /
              (SELECT max(tps) FROM curve c WHERE c.workload = a.workload))::numeric, 1) AS pct_of_best
  FROM advice a ORDER BY a.workload"
q -At -c "SELECT workload || ': ' || reason FROM advice ORDER BY workload"
echo "target: throughput at the recommended size within 10% of the best measured"
