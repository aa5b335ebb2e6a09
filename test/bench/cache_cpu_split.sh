#!/usr/bin/env bash
# Where the CPU time of a watched TPC-B-like run goes, per process: the
# backends, the cache worker, Redis, the WAL writer and the other background
# processes, in microseconds per transaction (/proc, clock ticks), for this
# tree and for the builds already installed in other stages, alternating.
#
#   [STAGES="/tmp/stage-a /tmp/stage-b"] [ROUNDS=3] [MODE=watched|plain] [SYNC=off|on] [REDIS_SOCKET=1]
#       PERFOPT_STAGE=<stage of this tree> bash test/bench/cache_cpu_split.sh [SECONDS]
#
# Each round starts a throwaway cluster (perfopt preloaded, synchronous_commit
# = off as test/bench/cache_invalidation.sh, or SYNC=on) and redis-server per stage,
# watches pgbench_accounts, _tellers and _branches as that benchmark does
# (MODE=plain: no watch), runs pgbench -c 2 -j 2 for SECONDS (default 10),
# waits for the outbox to drain, and prints each process group's CPU time
# per transaction.  The worker's and Redis's shares are read from their own
# /proc entries, so they move much less with the machine's load than a
# whole run's CPU per transaction does.  STAGES defaults to this tree's
# stage alone; a stage made by another tree's scripts/test.sh or by
# cache_invalidation.sh's BASELINE (<stage>-baseline) compares that build.
#
# Run as root; it starts and removes its own servers.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

SECS=${1:-10}
ROUNDS=${ROUNDS:-3}
MODE=${MODE:-watched}
cache_bench_options    # SYNC and REDIS_SOCKET (bench_lib.sh)
PORT=${PORT:-5459}
STAGES=${STAGES:-${PERFOPT_STAGE:-}}
[ -n "$STAGES" ] || die "set PERFOPT_STAGE (this tree's stage) or STAGES"

require_root
install_packages
build_and_install "$top"

ticks_per_sec=$(getconf CLK_TCK)
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# utime + stime + cutime + cstime of the postmaster, and of its live children
server_ticks() {
    local pm=$1 t=0 p
    for p in $pm $(pgrep -P "$pm"); do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat")))
    done
    echo "$t"
}
children_ticks() {
    local pm=$1 t=0 p
    for p in $(pgrep -P "$pm"); do t=$((t + $(proc_ticks "$p"))); done
    echo "$t"
}

echo "pgbench TPC-B-like, -c 2 -j 2, scale 10, $SECS s, $MODE, synchronous_commit = $SYNC, Redis over $transport, $ROUNDS rounds; $(nproc) cores; $(uptime)"
echo "us of CPU per transaction: total = backends + worker + walwriter + other background + redis"
for round in $(seq "$ROUNDS"); do
    for stage in $STAGES; do
        bin=$stage/usr/lib/postgresql/15/bin
        dir=$(postgres_tempdir cpu-split)
        rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        start_bench_redis "$dir" "$rport"
        rpid=$redis_pid
        PG_BIN=$bin
        start_cluster "$dir" "$PORT" "shared_buffers = '256MB'" "${redis_conf[@]}" \
            "max_connections = 50" "synchronous_commit = $SYNC"
        q() { PG_BIN=$bin as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
        pgb() { PG_BIN=$bin as_postgres pgbench -h "$dir" -p "$PORT" -n "$@" postgres 2>&1; }
        q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
        PG_BIN=$bin as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s 10 postgres >/dev/null 2>&1
        q -c "VACUUM ANALYZE"
        if [ "$MODE" = watched ]; then
            q -c "SELECT perfopt.cache_watch('pgbench_accounts', 'account:{aid}', 'user_data'),
                         perfopt.cache_watch('pgbench_tellers', 'teller:{tid}'),
                         perfopt.cache_watch('pgbench_branches', 'branch:{bid}')" >/dev/null
        fi
        pgb -c 2 -j 2 -T 3 >/dev/null
        pm=$(head -1 "$dir/data/postmaster.pid")
        wpid=$(q -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'perfopt cache invalidator'")
        wwpid=$(q -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
        for i in $(seq 600); do
            [ "$(q -At -c 'SELECT count(*) FROM perfopt.cache_invalidations')" = 0 ] && break
            sleep 0.1
        done
        t0=$(server_ticks "$pm"); c0=$(children_ticks "$pm")
        w0=$(proc_ticks "$wpid"); ww0=$(proc_ticks "$wwpid"); r0=$(proc_ticks "$rpid")
        out=$(pgb -c 2 -j 2 -T "$SECS")
        for i in $(seq 600); do
            [ "$(q -At -c 'SELECT count(*) FROM perfopt.cache_invalidations')" = 0 ] && break
            sleep 0.1
        done
        t1=$(server_ticks "$pm"); c1=$(children_ticks "$pm")
        w1=$(proc_ticks "$wpid"); ww1=$(proc_ticks "$wwpid"); r1=$(proc_ticks "$rpid")
        n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
        tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        python3 -c "
us = 1e6 / $ticks_per_sec / $n
server, bg, w, ww, r = ($t1 - $t0) * us, ($c1 - $c0) * us, ($w1 - $w0) * us, ($ww1 - $ww0) * us, ($r1 - $r0) * us
print('round $round, %s: tps %.0f, total %.1f = backends %.1f + worker %.1f + walwriter %.1f + other %.1f + redis %.1f'
      % ('$stage', $tps, server + r, server - bg, w, ww, bg - w - ww, r))"
        kill "$rpid"; wait "$rpid" 2>/dev/null || true
        stop_cluster "$dir"; rm -rf "$dir"
    done
done
echo "$(uptime)"
