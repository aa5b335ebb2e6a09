#!/usr/bin/env bash
# The instructions watching pgbench's tables adds to a writer's TPC-B-like
# transaction, counted by callgrind: the writer's side of the cache's write
# overhead (docs/cache.md, "What it costs"), a measure that the load of a
# shared machine does not move.
#
#   [BASELINE=<git revision>] [CALLGRIND_OUT=<dir>] bash test/bench/cache_write_instructions.sh [TRANSACTIONS]
#
# A throwaway cluster with pgbench's tables (scale 1) and
# 'pg_stat_statements, perfopt' preloaded is stopped, and a single-user
# backend on it runs, under valgrind --tool=callgrind, TRANSACTIONS (default
# 2000) TPC-B-like transactions (pgbench's seven statements, fixed
# pseudo-random values, the simple protocol) after 200 to warm the caches,
# and, to take the start-up and the warming out, half as many: the
# difference, per transaction, is one transaction's instructions.  Each run
# starts from a copy of the same data, once with cache_watch on
# pgbench_accounts ('account:{aid}'), _tellers and _branches, as
# test/bench/cache_invalidation.sh watches them, and once without.  The
# ratio plain over watched is the throughput ratio a CPU-bound writer would
# have if nothing else ran.
#
# What it leaves out: there is no cache worker in single-user mode, so the
# outbox rows only accumulate (the worker's Redis round trips, its deletion
# of the rows sent and VACUUM's work after are not counted: see
# test/bench/cache_cpu_split.sh for the worker's CPU per transaction), and
# the WAL writer's work.  Instructions are not time: an atomic operation or
# a lock counts as one instruction and costs tens.
#
# With BASELINE, the same for perfopt built from that git revision (`git
# archive`, built and installed into BASELINE_STAGE, default
# $PERFOPT_STAGE-baseline).  With CALLGRIND_OUT, the watched and plain runs'
# callgrind files are kept there (for callgrind_annotate).  WATCH_SQL
# replaces the cache_watch calls of the watched runs (to measure another
# trigger the same way: docs/cache.md measured an empty statement trigger
# with transition tables so).  Run as root; needs valgrind.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

TRANSACTIONS=${1:-2000}
BASELINE=${BASELINE:-}
BASELINE_STAGE=${BASELINE_STAGE:-${PERFOPT_STAGE:-/tmp/perfopt-stage}-baseline}
PORT=${PORT:-5449}
CALLGRIND_OUT=${CALLGRIND_OUT:-}
# what "watched" runs (an experiment may put other triggers there)
WATCH_SQL=${WATCH_SQL:-"SELECT perfopt.cache_watch('pgbench_accounts', 'account:{aid}', 'user_data'),
                               perfopt.cache_watch('pgbench_tellers', 'teller:{tid}'),
                               perfopt.cache_watch('pgbench_branches', 'branch:{bid}')"}

require_root
install_packages
command -v valgrind >/dev/null || die "valgrind is needed (apt-get install valgrind)"
build_and_install "$top"

declare -A bins
builds=(new)
bins[new]=$PG_BIN
if [ -n "$BASELINE" ]; then
    builds+=(old)
    build_baseline "$top" "$BASELINE" "$BASELINE_STAGE"
    bins[old]=$BASELINE_STAGE/usr/lib/postgresql/15/bin
fi
if [ -n "$CALLGRIND_OUT" ]; then
    mkdir -p "$CALLGRIND_OUT"
    chown postgres: "$CALLGRIND_OUT"
fi

dir=$(postgres_tempdir cache-write-instructions)
cleanup() { PG_BIN=${bins[new]}; stop_cluster "$dir"; rm -rf "$dir"; }
trap cleanup EXIT

# A pristine copy of the data of build $1, watched ($2 = watched) or not
prepare() {
    local b=$1 config=$2
    PG_BIN=${bins[$b]}
    rm -rf "$dir/data"
    start_cluster "$dir" "$PORT" "shared_buffers = '128MB'" "autovacuum = off"
    as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s 1 postgres >/dev/null 2>&1
    as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 \
        -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" -c "VACUUM ANALYZE" >/dev/null
    if [ "$config" = watched ]; then
        as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 \
            -c "$WATCH_SQL" >/dev/null
    fi
    stop_cluster "$dir"
    rm -rf "$dir/pristine-$b-$config"
    as_postgres cp -a "$dir/data" "$dir/pristine-$b-$config"
}

# Instructions of a single-user backend of build $1 on data $2 (watched or
# plain) that runs $3 transactions (after 200 to warm the caches); the
# callgrind file kept as $4 in CALLGRIND_OUT if given
instructions() {
    local b=$1 config=$2 n=$3 keep=${4:-} out=$dir/callgrind.out
    rm -rf "$dir/data" && as_postgres cp -a "$dir/pristine-$b-$config" "$dir/data"
    { tpcb_input tpcb-like 1 200; tpcb_input tpcb-like 201 $((200 + n)); } |
        as_postgres valgrind --tool=callgrind --callgrind-out-file="$out" \
            "${bins[$b]}/postgres" --single -D "$dir/data" postgres >/dev/null 2>&1 ||
        die "the single-user backend under callgrind failed"
    sed -n 's/^totals: \([0-9]*\).*/\1/p' "$out"
    if [ -n "$CALLGRIND_OUT" ] && [ -n "$keep" ]; then
        cp "$out" "$CALLGRIND_OUT/$keep"
    fi
    rm -f "$out"
}

echo
echo "== instructions per TPC-B-like transaction of a writer, tables watched and not (callgrind, single-user backend, $TRANSACTIONS transactions)"
printf '%-6s %12s %12s %12s %10s\n' build plain watched "watch adds" ratio
for b in "${builds[@]}"; do
    prepare "$b" plain
    prepare "$b" watched
    p_all=$(instructions "$b" plain "$TRANSACTIONS" "callgrind.$b.plain")
    p_half=$(instructions "$b" plain $((TRANSACTIONS / 2)))
    w_all=$(instructions "$b" watched "$TRANSACTIONS" "callgrind.$b.watched")
    w_half=$(instructions "$b" watched $((TRANSACTIONS / 2)))
    python3 -c "
n = $TRANSACTIONS - $TRANSACTIONS // 2
p = ($p_all - $p_half) / n
w = ($w_all - $w_half) / n
print('%-6s %12.0f %12.0f %12.0f %10.4f' % ('$b', p, w, w - p, p / w))"
done
echo "'ratio': plain over watched, the instructions per transaction of the writing backend (the worker's"
echo "work, the WAL writer's and the deletion of the sent rows are not in it); the target of the whole"
echo "throughput is at least 0.90"
