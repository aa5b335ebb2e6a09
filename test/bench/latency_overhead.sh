#!/usr/bin/env bash
# Benchmark of what perfopt's executor hooks and workers cost, and of how
# close its latency percentiles are to exact ones.
#
#   bash test/bench/latency_overhead.sh [SECONDS] [PAIRS] [SCALE]
#
# 1. Throughput: two servers with the same settings and data, differing
#    only in shared_preload_libraries: 'pg_stat_statements, perfopt' (the
#    launcher sampling at the default 10 s, the cache worker idle) and
#    'pg_stat_statements' alone.  Three configurations: perfopt at its
#    defaults, perfopt with perfopt.track_latency = none (the hooks
#    installed but timing nothing; set per connection with PGOPTIONS), and
#    pg_stat_statements alone.  pgbench select-only and TPC-B-like, 2
#    clients, over the simple protocol (-M simple) and the extended one with
#    prepared statements (-M prepared), each run SECONDS long (default 5),
#    in PAIRS turns (default 15) in which every configuration runs once,
#    the order rotating and reversing from one turn to the next.  The
#    machine is shared and its speed drifts by 10% from minute to minute:
#    the ratio of runs of the same turn, seconds apart, is compared, and the
#    median over the turns reported with its 95% confidence interval (the
#    distribution-free one of a median: between order statistics k and
#    n + 1 - k, k from the binomial distribution).  Beside throughput, each
#    run's CPU time per transaction of the server's processes (postmaster,
#    backends, workers: /proc, the reaped backends' included): on a machine
#    that other work loads, a run's throughput moves with its share of the
#    CPUs, its CPU time per transaction much less; the ratio of those costs
#    is the throughput ratio the two configurations would have on a machine
#    of their own.
# 2. The hooks' own cost, without the noise of the protocol, in one session:
#    a PL/pgSQL function runs chunks of 2,000 primary-key lookups (statements
#    the hooks time, as nested ones), switching perfopt.track_latency between
#    'all' and 'none' from one chunk to the next (ABBA), 200 pairs; the
#    median of the per-pair differences, with its confidence interval, is
#    the cost of timing and recording one statement, also as a share of
#    the lookup itself.  Each chunk is timed by the wall clock and by the
#    backend's CPU time (CLOCK_THREAD_CPUTIME_ID, through the small C
#    function of test/bench/thread_cpu.c, built and loaded by this script):
#    on a loaded machine the wall clock also counts the time the backend
#    waited for a CPU.  With BASELINE=<git revision>, a third server runs
#    perfopt built from that revision (`git archive`, installed into
#    BASELINE_STAGE, default $PERFOPT_STAGE-baseline) with the same data, and
#    the two builds take turns, 20 pairs at a time, so that both see the
#    same load; each build's figures are printed, then the ratio of the two
#    builds' costs (median of the rounds' ratios, with its interval).
# 3. Accuracy: one run of both workloads with every execution logged by
#    log_min_duration_statement = 0 ("execute" lines, since pgbench runs
#    prepared statements).  Exact percentiles of the logged durations
#    against perfopt's query_latency of the same executions.
#
# AA=1 adds to section 1 a third server like the second (pg_stat_statements
# alone, same settings and data) as a fourth configuration,
# pg_stat_statements_twin: its ratio to pg_stat_statements is an A/A
# comparison, what two servers that differ in nothing give, the method's own
# spread and bias beside the ratios that compare perfopt with them; and
# perfopt is also compared with both, the geometric mean of their runs of a
# turn, so that what tells one server from another weighs half.
#
# SYNC=off runs every server with synchronous_commit = off (default on,
# PostgreSQL's): TPC-B-like's commits then no longer wait for the shared
# disk's flush.  On this machine that did not narrow TPC-B-like's
# intervals (docs/workers.md, "Without the disk's flush").
#
# SCALE is pgbench's scale factor (default 10: it fits in memory).
# WORKLOADS (default "select-only tpcb-like") and PROTOCOLS (default "simple
# prepared") narrow section 1 to some of its pairs, to measure one again.  Run as
# root; it starts and removes its own clusters.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

SECONDS_RUN=${1:-5}
SECTIONS=${SECTIONS:-123}    # which of the three parts to run
WORKLOADS=${WORKLOADS:-select-only tpcb-like}   # section 1: which workloads
PROTOCOLS=${PROTOCOLS:-simple prepared}         # section 1: which protocols
BASELINE=${BASELINE:-}       # section 2 also on perfopt built from this revision
BASELINE_STAGE=${BASELINE_STAGE:-${PERFOPT_STAGE:-/tmp/perfopt-stage}-baseline}
PAIRS=${2:-15}
SCALE=${3:-10}
PORT=${PORT:-5439}
AA=${AA:-}                   # section 1: also an A/A server, pg_stat_statements alone
sync_option on               # SYNC: synchronous_commit of every server

require_root
install_packages
build_and_install "$top"

servers=(perfopt pg_stat_statements)
configs=(perfopt perfopt_untimed pg_stat_statements)
if [ -n "$AA" ]; then
    [[ $SECTIONS == *1* ]] || die "AA is for section 1"
    servers+=(pg_stat_statements_twin)
    configs+=(pg_stat_statements_twin)
fi
if [ -n "$BASELINE" ]; then
    [[ $SECTIONS == *2* ]] || die "BASELINE is for section 2"
    build_baseline "$top" "$BASELINE" "$BASELINE_STAGE"
    servers+=(baseline)
fi
declare -A dirs ports
preload_of() {
    case $1 in
        perfopt|baseline) echo "pg_stat_statements, perfopt" ;;
        pg_stat_statements|pg_stat_statements_twin) echo "pg_stat_statements" ;;
    esac
}
server_of() {
    case $1 in
        pg_stat_statements|pg_stat_statements_twin) echo "$1" ;;
        *) echo perfopt ;;
    esac
}
cleanup() {
    for c in "${servers[@]}"; do
        [ -n "${dirs[$c]:-}" ] && { stop_cluster "${dirs[$c]}"; rm -rf "${dirs[$c]}"; }
    done
    return 0
}
trap cleanup EXIT

port=$PORT
for c in "${servers[@]}"; do
    dirs[$c]=$(postgres_tempdir "bench-$c")
    ports[$c]=$port
    # the baseline server runs the binaries (and perfopt) of its own stage
    ( [ "$c" = baseline ] && PG_BIN=$BASELINE_STAGE/usr/lib/postgresql/15/bin
      start_cluster "${dirs[$c]}" "$port" "shared_buffers = '256MB'" "log_line_prefix = ''" \
          "shared_preload_libraries = '$(preload_of "$c")'" "synchronous_commit = $SYNC" )
    port=$((port + 1))
done
qc() { local c=$1; shift; as_postgres psql -h "${dirs[$c]}" -p "${ports[$c]}" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
q() { qc perfopt "$@"; }
# benchc CONFIG PROTOCOL pgbench-arguments...
benchc() {
    local c=$1 protocol=$2 s options=""
    shift 2
    s=$(server_of "$c")
    [ "$c" = perfopt_untimed ] && options="-c perfopt.track_latency=none"
    as_postgres env PGOPTIONS="$options" pgbench -h "${dirs[$s]}" -p "${ports[$s]}" -n -j 2 -c 2 \
        -M "$protocol" "$@" postgres 2>/dev/null
}

echo "initializing pgbench at scale $SCALE on the ${#servers[@]} servers ..."
for c in "${servers[@]}"; do
    as_postgres pgbench -h "${dirs[$c]}" -p "${ports[$c]}" -i -q -s "$SCALE" postgres >/dev/null 2>&1
    qc "$c" -c "VACUUM ANALYZE"
done
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
q -c "CREATE TABLE runs (turn int, workload text, protocol text, config text, tps float8,
                         cpu_us_per_tx float8, workers_us_per_tx float8)"

# CPU time (clock ticks) used so far by a server's processes: the
# postmaster's own and its reaped children's, and its live children's
# (one awk for them all: a process per child is slow on a loaded machine)
server_ticks() {
    local pm
    pm=$(head -1 "${dirs[$1]}/data/postmaster.pid")
    { cd /proc && cat "$pm/stat" $(pgrep -P "$pm" | sed 's|$|/stat|') 2>/dev/null || true; } |
        awk '{ t += $14 + $15 + $16 + $17 } END { print t + 0 }'
}
# CPU time (clock ticks) used so far by perfopt's own background processes
# of a server (launcher, workers): the live children titled "perfopt ..."
# (a worker that starts and exits between two readings is not counted)
perfopt_ticks() {
    local pm p t=0
    pm=$(head -1 "${dirs[$1]}/data/postmaster.pid")
    for p in $(pgrep -P "$pm"); do
        if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q '^postgres: perfopt'; then
            t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
        fi
    done
    echo "$t"
}
ticks_per_sec=$(getconf CLK_TCK)

if [[ $SECTIONS == *1* ]]; then
for workload in $WORKLOADS; do
    flags=""
    [ "$workload" = select-only ] && flags="-S"
    for protocol in $PROTOCOLS; do
        for c in "${configs[@]}"; do benchc "$c" "$protocol" $flags -T 2 >/dev/null; done
        for turn in $(seq "$PAIRS"); do
            # the order rotating, and reversed every other turn
            n=${#configs[@]}
            order=()
            for i in $(seq 0 $((n - 1))); do
                if [ $((turn % 2)) = 0 ]; then
                    order+=("${configs[$(( (n - 1 - i + turn) % n ))]}")
                else
                    order+=("${configs[$(( (i + turn) % n ))]}")
                fi
            done
            line="turn $turn, $workload, $protocol:"
            for c in "${order[@]}"; do
                s=$(server_of "$c")
                t0=$(server_ticks "$s")
                w0=$(perfopt_ticks "$s")
                out=$(benchc "$c" "$protocol" $flags -T "$SECONDS_RUN")
                sleep 0.2    # the backends exit and are reaped
                t1=$(server_ticks "$s")
                w1=$(perfopt_ticks "$s")
                tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
                n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
                cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$ticks_per_sec" -v n="$n" 'BEGIN { print (b - a) * 1e6 / hz / n }')
                wcpu=$(awk -v a="$w0" -v b="$w1" -v hz="$ticks_per_sec" -v n="$n" 'BEGIN { print (b - a) * 1e6 / hz / n }')
                q -c "INSERT INTO runs VALUES ($turn, '$workload', '$protocol', '$c', $tps, $cpu, $wcpu)"
                line="$line $c $tps ($(printf '%.1f' "$cpu") us CPU)"
            done
            echo "$line"
        done
    done
done

echo
echo "== 1. throughput, pgbench -c 2 -j 2, $PAIRS turns of ${SECONDS_RUN} s runs, scale $SCALE, synchronous_commit = $SYNC"
q -P footer=off -c "
SELECT workload, protocol, config, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)) AS median_tps,
       round(min(tps)) AS min_tps, round(max(tps)) AS max_tps,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_us_per_tx)::numeric, 1) AS median_cpu_us_per_tx,
       round((100 * sum(workers_us_per_tx) / sum(cpu_us_per_tx))::numeric, 2) AS perfopt_workers_pct
  FROM runs GROUP BY workload, protocol, config ORDER BY workload, protocol, config"
printf '%-12s %-9s %-38s %8s %15s %10s %15s\n' workload protocol ratio tps "95% CI" "by CPU" "95% CI"
# ratio_line WORKLOAD PROTOCOL LABEL "TPS RATIOS" "CPU RATIOS": their medians
# with their intervals, one line
ratio_line() {
    local m lo hi cm clo chi
    read -r m lo hi <<< "$(median_ci 4 $4)"
    read -r cm clo chi <<< "$(median_ci 4 $5)"
    printf '%-12s %-9s %-38s %8s %7s-%-7s %10s %7s-%-7s\n' "$1" "$2" "$3" "$m" "$lo" "$hi" "$cm" "$clo" "$chi"
}
for workload in $WORKLOADS; do
    for protocol in $PROTOCOLS; do
        pairs=("perfopt pg_stat_statements" "perfopt_untimed pg_stat_statements" "perfopt perfopt_untimed")
        [ -n "$AA" ] && pairs+=("pg_stat_statements_twin pg_stat_statements" "perfopt pg_stat_statements_twin")
        for pair in "${pairs[@]}"; do
            set -- $pair
            ratios=$(q -At -c "
                SELECT a.tps / b.tps FROM runs a JOIN runs b USING (turn, workload, protocol)
                 WHERE workload = '$workload' AND protocol = '$protocol'
                   AND a.config = '$1' AND b.config = '$2'")
            cpu_ratios=$(q -At -c "
                SELECT b.cpu_us_per_tx / a.cpu_us_per_tx FROM runs a JOIN runs b USING (turn, workload, protocol)
                 WHERE workload = '$workload' AND protocol = '$protocol'
                   AND a.config = '$1' AND b.config = '$2'")
            ratio_line "$workload" "$protocol" "$1 / $2" "$ratios" "$cpu_ratios"
        done
        if [ -n "$AA" ]; then
            # perfopt over both servers without it, the geometric mean of
            # the two runs of the turn: what tells one server from another
            # (the A/A ratio above) weighs half
            ratios=$(q -At -c "
                SELECT a.tps / sqrt(b.tps * c.tps)
                  FROM runs a JOIN runs b USING (turn, workload, protocol) JOIN runs c USING (turn, workload, protocol)
                 WHERE workload = '$workload' AND protocol = '$protocol' AND a.config = 'perfopt'
                   AND b.config = 'pg_stat_statements' AND c.config = 'pg_stat_statements_twin'")
            cpu_ratios=$(q -At -c "
                SELECT sqrt(b.cpu_us_per_tx * c.cpu_us_per_tx) / a.cpu_us_per_tx
                  FROM runs a JOIN runs b USING (turn, workload, protocol) JOIN runs c USING (turn, workload, protocol)
                 WHERE workload = '$workload' AND protocol = '$protocol' AND a.config = 'perfopt'
                   AND b.config = 'pg_stat_statements' AND c.config = 'pg_stat_statements_twin'")
            ratio_line "$workload" "$protocol" "perfopt / both pg_stat_statements" "$ratios" "$cpu_ratios"
        fi
    done
done
echo "perfopt_workers_pct: the CPU time of perfopt's launcher and workers in those runs, as a share of the server's"
echo "medians of the ratios within a turn; 'by CPU': the inverse ratio of the server's CPU time per"
echo "transaction. Target: perfopt at its defaults at least 0.97 of pg_stat_statements alone (which"
echo "perfopt requires), both protocols, both workloads"
if [ -n "$AA" ]; then
    echo "AA: pg_stat_statements_twin / pg_stat_statements compares two servers that differ in nothing (the"
    echo "method's own spread); 'perfopt / both pg_stat_statements' is over the geometric mean of their runs"
fi
fi

if [[ $SECTIONS == *2* ]]; then
echo
echo "== 2. the hooks' own cost per statement: chunks of 2,000 primary-key lookups, track_latency all / none"
builds=(perfopt)
[ -n "$BASELINE" ] && builds+=(baseline)
# the backend's CPU time, beside the wall clock: test/bench/thread_cpu.c
cc -O2 -fPIC -shared -I"$(/usr/bin/pg_config --includedir-server)" -o "${dirs[perfopt]}/thread_cpu.so" \
    "$top/test/bench/thread_cpu.c" || die "could not build thread_cpu.c"
chown postgres: "${dirs[perfopt]}/thread_cpu.so"
for b in "${builds[@]}"; do
[ "$b" = baseline ] && qc baseline -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
qc "$b" -c "CREATE FUNCTION thread_cpu_ns() RETURNS bigint AS '${dirs[perfopt]}/thread_cpu.so' LANGUAGE C" -c "
CREATE FUNCTION hook_cost(pairs int, n int) RETURNS TABLE (pair int, track text, us float8, cpu_us float8)
LANGUAGE plpgsql AS \$\$
DECLARE
    t0 timestamptz;
    c0 bigint;
    x int;
    tr text;
BEGIN
    FOR p IN 1..pairs LOOP
        FOREACH tr IN ARRAY CASE WHEN p % 2 = 0 THEN ARRAY['none', 'all'] ELSE ARRAY['all', 'none'] END LOOP
            PERFORM set_config('perfopt.track_latency', tr, true);
            t0 := clock_timestamp();
            c0 := thread_cpu_ns();
            FOR i IN 1..n LOOP
                SELECT abalance INTO x FROM pgbench_accounts WHERE aid = 1 + (i * 7919) % 100000;
            END LOOP;
            cpu_us := (thread_cpu_ns() - c0) / 1e3 / n;
            pair := p;
            track := tr;
            us := extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END \$\$" -c "CREATE TABLE loops AS SELECT 0 AS round, * FROM hook_cost(20, 2000) WHERE false"
done
# 10 rounds of 20 pairs; with a baseline the builds take turns, the order
# reversed from one round to the next
for round in $(seq 1 10); do
    order=("${builds[@]}")
    [ $((round % 2)) = 0 ] && [ ${#builds[@]} = 2 ] && order=(baseline perfopt)
    for b in "${order[@]}"; do
        qc "$b" -c "INSERT INTO loops SELECT $round, * FROM hook_cost(20, 2000)"
    done
done
for b in "${builds[@]}"; do
    [ ${#builds[@]} = 2 ] && { [ "$b" = perfopt ] && echo "this build:" || echo "baseline $BASELINE:"; }
    for clock in us cpu_us; do
        diffs=$(qc "$b" -At -c "SELECT a.$clock - n.$clock FROM loops a JOIN loops n USING (round, pair)
                                 WHERE a.track = 'all' AND n.track = 'none'")
        lookup=$(qc "$b" -At -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY $clock) FROM loops WHERE track = 'none'")
        read -r m lo hi <<< "$(median_ci 4 $diffs)"
        python3 -c "
m, lo, hi, l = $m, $lo, $hi, $lookup
what = {'us': 'by the wall clock', 'cpu_us': 'by the backend\\'s CPU time'}['$clock']
print('%s: primary-key lookup with track_latency = none: %.3f us (median of the chunks)' % (what, l))
print('  timing and recording one statement: %.3f us, 95%% CI %.3f-%.3f us: %.1f%% of the lookup (CI %.1f-%.1f%%); target: under 3%%'
      % (m, lo, hi, 100 * m / l, 100 * lo / l, 100 * hi / l))"
    done
done
if [ ${#builds[@]} = 2 ]; then
    # per round, each build's median cost by CPU time; the ratio of the two
    for b in "${builds[@]}"; do
        qc "$b" -At -c "SELECT round, percentile_cont(0.5) WITHIN GROUP (ORDER BY a.cpu_us - n.cpu_us)
                          FROM loops a JOIN loops n USING (round, pair)
                         WHERE a.track = 'all' AND n.track = 'none' GROUP BY round ORDER BY round" > "${dirs[perfopt]}/rounds.$b"
    done
    ratios=$(paste -d' ' "${dirs[perfopt]}/rounds.perfopt" "${dirs[perfopt]}/rounds.baseline" |
             awk -F'[| ]' '{ if ($4 > 0) print $2 / $4 }')
    read -r m lo hi <<< "$(median_ci 3 $ratios)"
    echo "this build's cost over the baseline's, by CPU time, median of the 10 rounds: $m (95% CI $lo-$hi)"
fi
fi
[[ $SECTIONS == *3* ]] || exit 0

# 3. accuracy: the executions of one run, as the server log times them
dir=${dirs[perfopt]}
q -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q -c "SELECT perfopt.query_latency_reset()" >/dev/null
start_offset=$(stat -c %s "$dir/server.log")
benchc perfopt prepared -S -T 10 >/dev/null
benchc perfopt prepared -T 10 >/dev/null
q -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null
q -c "CREATE TABLE latency AS SELECT * FROM perfopt.query_latency WHERE toplevel"

# one "ms<TAB>query" line per logged execution
tail -c +"$((start_offset + 1))" "$dir/server.log" | awk '
    /^LOG:  duration: [0-9.]+ ms  execute / {
        ms = $3; sub(/^LOG:  duration: [0-9.]+ ms  execute [^:]*: /, ""); print ms "\t" $0 }
' > "$dir/durations.tsv"
chown postgres: "$dir/durations.tsv"
q -c "CREATE TABLE durations (ms float8, query text)" \
  -c "\\copy durations FROM '$dir/durations.tsv'"

echo
echo "== 3. perfopt's percentiles against exact ones from log_min_duration_statement = 0, same executions"
q -P footer=off -c "
CREATE TEMP VIEW compared AS
WITH exact AS (
    SELECT query, count(*) AS calls,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
           percentile_disc(0.99) WITHIN GROUP (ORDER BY ms) AS p99
      FROM durations GROUP BY query)
SELECT left(e.query, 40) AS statement, e.calls, l.calls AS perfopt_calls,
       e.p50, l.p50_ms, e.p95, l.p95_ms, e.p99, l.p99_ms,
       100 * greatest(abs(l.p50_ms - e.p50) / e.p50, abs(l.p95_ms - e.p95) / e.p95,
                      abs(l.p99_ms - e.p99) / e.p99) AS worst_error_pct,
       -- the logs round to the microsecond: what is left beyond half of one
       100 * greatest(greatest(abs(l.p50_ms - e.p50) - 0.0005, 0) / e.p50,
                      greatest(abs(l.p95_ms - e.p95) - 0.0005, 0) / e.p95,
                      greatest(abs(l.p99_ms - e.p99) - 0.0005, 0) / e.p99) AS beyond_rounding_pct
  FROM exact e JOIN latency l ON rtrim(l.query, '; ') = rtrim(e.query, '; ')
 WHERE e.calls >= 100" -c "
SELECT statement, calls, perfopt_calls,
       round(p50::numeric, 3) AS exact_p50, round(p50_ms::numeric, 4) AS p50,
       round(p95::numeric, 3) AS exact_p95, round(p95_ms::numeric, 4) AS p95,
       round(p99::numeric, 3) AS exact_p99, round(p99_ms::numeric, 4) AS p99,
       round(worst_error_pct::numeric, 1) AS worst_error_pct,
       round(beyond_rounding_pct::numeric, 1) AS beyond_rounding_pct
  FROM compared ORDER BY statement" -c "
SELECT round(max(worst_error_pct)::numeric, 1) AS worst_error_pct,
       round(max(beyond_rounding_pct)::numeric, 2) AS worst_beyond_rounding_pct,
       round(avg(worst_error_pct)::numeric, 1) AS mean_worst_error_pct
  FROM compared"
cat <<'TEXT'
Both clocks start when the server begins the Execute message and count microseconds.  The log's
stops when the message is done; perfopt's when the executor is done with the statement, just
before the command's completion is sent: a microsecond or two earlier, which is most of what is
left for statements of a few microseconds.
TEXT
