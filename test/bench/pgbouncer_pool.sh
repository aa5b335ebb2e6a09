#!/usr/bin/env bash
# Benchmark of pgbouncer_config() through a real PgBouncer: many more pgbench
# clients than the pool, through PgBouncer with the fragment perfopt wrote,
# against the same clients connected directly and against PgBouncer with
# every pool size of a sweep (the fragment with only default_pool_size and
# max_db_connections changed).
#
#   bash test/bench/pgbouncer_pool.sh [SCALE] [SECONDS] [ROUNDS] [CLIENTS]
#
# SCALE is pgbench's scale factor (default 10), SECONDS each run's length
# (default 8), ROUNDS how many times every configuration runs (default 5),
# CLIENTS the pgbench clients of every run (default 32).  The PgBouncers
# listen on BOUNCER_PORT (perfopt's fragment), BOUNCER_PORT + 1 (the
# fragment asked for through PgBouncer) and the next ports (SWEEP, the pool
# sizes tried; default "1 2 3 4 6 8 12 16").  WORKLOADS (default
# "read-write read-only") picks pgbench's TPC-B-like and select-only
# scripts.  The runs are interleaved: each round runs every configuration
# once, in an order that rotates from round to round, and the figures are
# medians over the rounds, so that the load of a shared machine falls on
# all of them alike.  Each median has its distribution-free 95% confidence
# interval (order statistics, as median_ci in bench_lib.sh; at least 6
# rounds give one), and perfopt's pool is compared with the best pool of the
# sweep round by round: the median of the per-round ratios with its 95%
# interval.  Tie rule: a pool size whose median's interval overlaps the best
# one's is tied with it (test/bench/pool_verdict.py).
#
# The fragment is asked for while CLIENTS clients run directly, as
# pool_size.sh does, and a second time while they run through PgBouncer
# with the first (perfopt-pooled): there the server sees the pooler's
# server connections, whose idle time between transactions is the pooler's
# hand-off.  Both are used as they are: the lines this script appends to its
# [pgbouncer] section only say where to listen (127.0.0.1) and whom to let
# in.  PgBouncer runs as the postgres user (it refuses root) and connects to
# the server's unix socket.  Run as root; it starts and removes its own
# cluster and PgBouncers.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

SCALE=${1:-10}
SECONDS_RUN=${2:-8}
ROUNDS=${3:-5}
CLIENTS=${4:-32}
WORKLOADS=${WORKLOADS:-read-write read-only}
PORT=${PORT:-5439}
BOUNCER_PORT=${BOUNCER_PORT:-16440}
SWEEP=${SWEEP:-1 2 3 4 6 8 12 16}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bouncer)
stop_bouncers() {
    local pidfile
    for pidfile in "$dir"/bouncer-*.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    done
    return 0
}
trap 'stop_bouncers; stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "max_connections = 150" "shared_buffers = '256MB'"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
tps_of() { sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
echo "initializing pgbench at scale $SCALE ..."
as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s "$SCALE" postgres >/dev/null 2>&1
q -c "VACUUM ANALYZE"
echo '"postgres" ""' > "$dir/userlist.txt"
chown postgres: "$dir/userlist.txt"

# Start a PgBouncer on port $2 with the fragment in file $1
start_bouncer() {
    local fragment=$1 port=$2 i
    {
        cat "$fragment"
        echo
        echo "listen_addr = 127.0.0.1"
        echo "listen_port = $port"
        echo "unix_socket_dir ="
        echo "auth_type = trust"
        echo "auth_file = $dir/userlist.txt"
        echo "logfile = $dir/bouncer-$port.log"
        echo "pidfile = $dir/bouncer-$port.pid"
    } > "$dir/bouncer-$port.ini"
    chown postgres: "$dir/bouncer-$port.ini"
    as_postgres pgbouncer -d "$dir/bouncer-$port.ini" >/dev/null
    for i in $(seq 50); do
        as_postgres psql -h 127.0.0.1 -p "$port" -d postgres -XAtqc "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    cat "$dir/bouncer-$port.log" >&2
    die "PgBouncer did not start on port $port"
}


summary=""
for workload in $WORKLOADS; do
    flags=""
    [ "$workload" = read-only ] && flags="-S"
    echo
    echo "== $workload: asking for the fragment while $CLIENTS clients run directly"
    as_postgres pgbench -h "$dir" -p "$PORT" -n -j 2 $flags -c "$CLIENTS" -T 12 postgres >/dev/null 2>&1 &
    sleep 3
    q -At -c "SELECT perfopt.pgbouncer_config(5)" > "$dir/fragment-$workload.ini"
    wait
    cat "$dir/fragment-$workload.ini"
    pool=$(sed -n 's/^default_pool_size = \([0-9]*\)$/\1/p' "$dir/fragment-$workload.ini")
    [ -n "$pool" ] || die "the fragment names no default_pool_size"

    # one PgBouncer per configuration: the fragment as it is, then the sweep
    stop_bouncers
    rm -f "$dir"/bouncer-*
    configs="direct"
    start_bouncer "$dir/fragment-$workload.ini" "$BOUNCER_PORT"
    configs="$configs perfopt:$BOUNCER_PORT"
    pools="$pool"

    # the advice asked for again while the clients run through PgBouncer
    # with the first fragment: the server then sees the pooler's own server
    # connections, and their idle time between transactions is the pooler's
    # hand-off, not the clients' (in direct sessions it was pgbench's)
    echo "== $workload: asking for the fragment again while $CLIENTS clients run through PgBouncer (pool $pool)"
    as_postgres pgbench -h 127.0.0.1 -p "$BOUNCER_PORT" -n -j 2 $flags -c "$CLIENTS" -T 12 postgres >/dev/null 2>&1 &
    sleep 3
    q -At -c "SELECT perfopt.pgbouncer_config(5)" > "$dir/fragment-$workload-pooled.ini"
    wait
    pooled=$(sed -n 's/^default_pool_size = \([0-9]*\)$/\1/p' "$dir/fragment-$workload-pooled.ini")
    [ -n "$pooled" ] || die "the second fragment names no default_pool_size"
    cat "$dir/fragment-$workload-pooled.ini"
    start_bouncer "$dir/fragment-$workload-pooled.ini" "$((BOUNCER_PORT + 1))"
    configs="$configs perfopt-pooled:$((BOUNCER_PORT + 1))"
    pools="$pools $pooled"
    n=2
    for size in $SWEEP; do
        port=$((BOUNCER_PORT + n))
        sed -e "s/^default_pool_size = .*/default_pool_size = $size/" \
            -e "s/^max_db_connections = .*/max_db_connections = $size/" \
            "$dir/fragment-$workload.ini" > "$dir/sweep-$size.ini"
        start_bouncer "$dir/sweep-$size.ini" "$port"
        configs="$configs pool$size:$port"
        n=$((n + 1))
    done

    # interleaved rounds, the order rotating
    : > "$dir/runs-$workload"
    set -- $configs
    count=$#
    for round in $(seq "$ROUNDS"); do
        for i in $(seq 0 $((count - 1))); do
            idx=$(( (i + round - 1) % count + 1 ))
            config=${!idx}
            name=${config%%:*}
            if [ "$name" = direct ]; then
                tps=$(as_postgres pgbench -h "$dir" -p "$PORT" -n -j 2 $flags -c "$CLIENTS" -T "$SECONDS_RUN" postgres 2>/dev/null | tps_of)
            else
                tps=$(as_postgres pgbench -h 127.0.0.1 -p "${config##*:}" -n -j 2 $flags -c "$CLIENTS" -T "$SECONDS_RUN" postgres 2>/dev/null | tps_of)
            fi
            echo "$name ${tps:-0}" >> "$dir/runs-$workload"
            echo "$workload, round $round, $name: ${tps:-0} tps"
        done
    done

    echo
    echo "== $workload: $CLIENTS clients, median of $ROUNDS interleaved runs of $SECONDS_RUN s (pgbench -j 2, scale $SCALE, $(nproc) cores)"
    line=$(python3 "$top/test/bench/pool_verdict.py" "$workload" "$pools" "$configs" "$dir/runs-$workload")
    echo "$line"
    summary="$summary$line"$'\n'
done

echo
echo "== summary ($CLIENTS clients, $ROUNDS interleaved rounds of $SECONDS_RUN s, scale $SCALE)"
printf '%s' "$summary"
echo "target: perfopt's pool within 10% of the best pool size of the sweep (median of the per-round ratios), or tied with it (the 95% intervals of their medians overlap)"
