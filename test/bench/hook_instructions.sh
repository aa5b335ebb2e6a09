#!/usr/bin/env bash
# The instructions perfopt's executor hooks add to a statement, counted by
# callgrind: a measure of the hot path that the load of a shared machine
# does not move (the time it takes does move: see latency_overhead.sh).
#
#   [BASELINE=<git revision>] bash test/bench/hook_instructions.sh [LOOKUPS] [TRANSACTIONS]
#
# A throwaway cluster with pgbench's tables (scale 1) and
# 'pg_stat_statements, perfopt' preloaded is stopped, and a single-user
# backend on it runs, under valgrind --tool=callgrind, a PL/pgSQL loop of
# LOOKUPS (default 5000) primary-key lookups (statements the hooks time,
# as nested ones) twice: with perfopt.track_latency = 'all' and 'none'.  The
# difference of the two runs' instruction counts, per lookup, is what timing
# and recording a statement adds; the 'none' run's count per lookup, the
# lookup itself (with the loop, the hooks installed but idle).  With
# BASELINE, the same for perfopt built from that git revision (`git
# archive`, built and installed into BASELINE_STAGE, default
# $PERFOPT_STAGE-baseline).
#
# Then the whole backend's instructions per transaction of pgbench's
# TPC-B-like (its seven statements) and select-only workloads, each
# statement a top-level statement of the simple protocol:
# parsed, analysed, planned and run, so that every hook perfopt installs runs
# at its defaults, parameter sampling included), TRANSACTIONS (default 2000)
# of them with fixed pseudo-random values, with 'pg_stat_statements, perfopt'
# preloaded and with pg_stat_statements alone: the ratio is the share of a
# backend's instructions perfopt adds to an application's transaction.  The
# client, the protocol and the wait for the WAL flush are not in it, so the
# ratio is the hard case of the throughput one.
#
# Instructions are not time: an atomic read-modify-write or a lock counts as
# one instruction and costs tens, a clock read through the vDSO is partly
# invisible to valgrind.  Run as root; needs valgrind.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

LOOKUPS=${1:-5000}
TRANSACTIONS=${2:-2000}
BASELINE=${BASELINE:-}
BASELINE_STAGE=${BASELINE_STAGE:-${PERFOPT_STAGE:-/tmp/perfopt-stage}-baseline}
PORT=${PORT:-5449}

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

dir=$(postgres_tempdir hook-instructions)
cleanup() { stop_cluster "$dir"; rm -rf "$dir"; }
trap cleanup EXIT

start_cluster "$dir" "$PORT" "shared_buffers = '128MB'"
as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s 1 postgres >/dev/null 2>&1
as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 \
    -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" -c "VACUUM ANALYZE" -c "
CREATE FUNCTION lookups(n int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
    x int;
BEGIN
    FOR i IN 1..n LOOP
        SELECT abalance INTO x FROM pgbench_accounts WHERE aid = 1 + (i * 7919) % 100000;
    END LOOP;
END \$\$"
stop_cluster "$dir"

# instructions of a single-user backend of build $1 that runs $2 lookups
# with track_latency = $3 (after 200 to warm the caches)
instructions() {
    local bin=$1 n=$2 track=$3 out=$dir/callgrind.out
    printf "SET perfopt.track_latency = '%s';\nSELECT lookups(200);\nSELECT lookups(%d);\n" "$track" "$n" |
        as_postgres valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$bin/postgres" --single -D "$dir/data" postgres >/dev/null 2>&1 ||
        die "the single-user backend under callgrind failed"
    sed -n 's/^totals: \([0-9]*\).*/\1/p' "$out"
    rm -f "$out"
}

echo
echo "== instructions per nested primary-key lookup (callgrind, single-user backend, $LOOKUPS lookups)"
printf '%-6s %12s %12s %14s\n' build "timing adds" "lookup" "share"
for b in "${builds[@]}"; do
    all=$(instructions "${bins[$b]}" "$LOOKUPS" all)
    none=$(instructions "${bins[$b]}" "$LOOKUPS" none)
    # the lookups' own count: the 'none' run less one of $LOOKUPS / 2 lookups
    half=$(instructions "${bins[$b]}" $((LOOKUPS / 2)) none)
    python3 -c "
added = ($all - $none) / $LOOKUPS
lookup = ($none - $half) / ($LOOKUPS - $LOOKUPS // 2)
print('%-6s %12.0f %12.0f %13.1f%%' % ('$b', added, lookup, 100 * added / lookup))"
done
echo "'timing adds': instructions with track_latency = all less with none, per lookup; 'lookup': the"
echo "instructions of one lookup with the loop around it, with none"

# instructions of a single-user backend of build $1, preloading $2, that
# runs $3 transactions of workload $4 (after 200 to warm the caches)
tpcb_instructions() {
    local bin=$1 preload=$2 n=$3 workload=$4 out=$dir/callgrind.out
    # every run starts from the same data: the runs before it changed it
    [ -d "$dir/pristine" ] || as_postgres cp -a "$dir/data" "$dir/pristine"
    rm -rf "$dir/data" && as_postgres cp -a "$dir/pristine" "$dir/data"
    { tpcb_input "$workload" 1 200; tpcb_input "$workload" 201 $((200 + n)); } |
        as_postgres valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$bin/postgres" --single -D "$dir/data" -c shared_preload_libraries="$preload" postgres \
            >/dev/null 2>&1 || die "the single-user backend under callgrind failed"
    sed -n 's/^totals: \([0-9]*\).*/\1/p' "$out"
    rm -f "$out"
}

for workload in tpcb-like select-only; do
echo
echo "== instructions per $workload transaction, simple protocol (callgrind, single-user backend, $TRANSACTIONS transactions)"
printf '%-6s %16s %20s %10s\n' build "perfopt loaded" "pg_stat_statements" "ratio"
for b in "${builds[@]}"; do
    # per transaction: a run of TRANSACTIONS less one of half as many
    p_all=$(tpcb_instructions "${bins[$b]}" "pg_stat_statements, perfopt" "$TRANSACTIONS" $workload)
    p_half=$(tpcb_instructions "${bins[$b]}" "pg_stat_statements, perfopt" $((TRANSACTIONS / 2)) $workload)
    s_all=$(tpcb_instructions "${bins[$b]}" pg_stat_statements "$TRANSACTIONS" $workload)
    s_half=$(tpcb_instructions "${bins[$b]}" pg_stat_statements $((TRANSACTIONS / 2)) $workload)
    python3 -c "
n = $TRANSACTIONS - $TRANSACTIONS // 2
p = ($p_all - $p_half) / n
s = ($s_all - $s_half) / n
print('%-6s %16.0f %20.0f %10.4f' % ('$b', p, s, s / p))"
done
done
echo "'ratio': pg_stat_statements alone over perfopt loaded, the instructions per transaction: the throughput"
echo "ratio a CPU-bound backend would have (1 = perfopt adds nothing)"
