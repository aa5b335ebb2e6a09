#!/usr/bin/env bash
# Benchmark of what perfopt's executor hooks and workers cost, and of how
# close its latency percentiles are to exact ones.
#
#   bash test/bench/latency_overhead.sh [SECONDS] [PAIRS] [SCALE]
#
# 1. Throughput: three servers with the same settings and data, differing
#    only in shared_preload_libraries: 'pg_stat_statements, perfopt'
#    (perfopt's launcher sampling every 10 s), 'pg_stat_statements', and
#    nothing.  pgbench select-only and TPC-B-like, 2 clients, prepared
#    statements (the executor's share of each call is then the largest, so
#    the hooks' cost shows most), run on each server in turn, SECONDS long
#    (default 5), PAIRS times (default 15), the order rotating and reversing
#    from one turn to the next so that no server is always first or last.
#    The machine is shared and its speed drifts by 10% from minute to
#    minute: the ratio of runs of the same turn, a few seconds apart, is
#    compared, and the median over the turns reported.
# 2. The hooks' own cost, without the noise of the protocol: a PL/pgSQL
#    loop of primary-key lookups (statements the hooks time, as nested ones)
#    with perfopt.track_latency = 'all' and 'none' in turn, same session.
# 3. Accuracy: one run of both workloads with every execution logged by
#    log_min_duration_statement = 0 ("execute" lines, since pgbench runs
#    prepared statements).  Exact percentiles of the logged durations
#    against perfopt's query_latency of the same executions.
#
# SCALE is pgbench's scale factor (default 10: it fits in memory).  Run as
# root; it starts and removes its own clusters.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

SECONDS_RUN=${1:-5}
SECTIONS=${SECTIONS:-123}    # which of the three parts to run
PAIRS=${2:-15}
SCALE=${3:-10}
PORT=${PORT:-5439}

require_root
install_packages
build_and_install "$top"

configs=(perfopt pg_stat_statements none)
declare -A dirs ports
preload_of() {
    case $1 in
        perfopt) echo "pg_stat_statements, perfopt" ;;
        pg_stat_statements) echo "pg_stat_statements" ;;
        none) echo "" ;;
    esac
}
cleanup() {
    for c in "${configs[@]}"; do
        [ -n "${dirs[$c]:-}" ] && { stop_cluster "${dirs[$c]}"; rm -rf "${dirs[$c]}"; }
    done
    return 0
}
trap cleanup EXIT

port=$PORT
for c in "${configs[@]}"; do
    dirs[$c]=$(postgres_tempdir "bench-$c")
    ports[$c]=$port
    start_cluster "${dirs[$c]}" "$port" "shared_buffers = '256MB'" "log_line_prefix = ''" \
        "shared_preload_libraries = '$(preload_of "$c")'"
    port=$((port + 1))
done
qc() { local c=$1; shift; as_postgres psql -h "${dirs[$c]}" -p "${ports[$c]}" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
q() { qc perfopt "$@"; }
benchc() {
    local c=$1; shift
    as_postgres pgbench -h "${dirs[$c]}" -p "${ports[$c]}" -n -j 2 -c 2 -M prepared "$@" postgres 2>/dev/null
}

echo "initializing pgbench at scale $SCALE on the three servers ..."
for c in "${configs[@]}"; do
    as_postgres pgbench -h "${dirs[$c]}" -p "${ports[$c]}" -i -q -s "$SCALE" postgres >/dev/null 2>&1
    qc "$c" -c "VACUUM ANALYZE"
done
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
q -c "CREATE TABLE runs (turn int, workload text, config text, tps float8)"

for workload in select-only tpcb-like; do
    [[ $SECTIONS == *1* ]] || break
    flags=""
    [ "$workload" = select-only ] && flags="-S"
    for c in "${configs[@]}"; do benchc "$c" $flags -T 3 >/dev/null; done
    for turn in $(seq "$PAIRS"); do
        order=()
        for i in 0 1 2; do order+=("${configs[$(( (i + turn) % 3 ))]}"); done
        if [ $((turn % 2)) = 0 ]; then order=("${order[2]}" "${order[1]}" "${order[0]}"); fi
        line="turn $turn, $workload:"
        for c in "${order[@]}"; do
            tps=$(benchc "$c" $flags -T "$SECONDS_RUN" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            q -c "INSERT INTO runs VALUES ($turn, '$workload', '$c', $tps)"
            line="$line $c $tps"
        done
        echo "$line"
    done
done

if [[ $SECTIONS == *1* ]]; then
echo
echo "== 1. throughput, pgbench -c 2 -j 2 -M prepared, $PAIRS turns of ${SECONDS_RUN} s runs, scale $SCALE"
q -P footer=off -c "
SELECT workload, config, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)) AS median_tps,
       round(min(tps)) AS min_tps, round(max(tps)) AS max_tps
  FROM runs GROUP BY workload, config ORDER BY workload, config"
q -P footer=off -c "
SELECT p.workload,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps / s.tps)::numeric, 4)
           AS perfopt_over_pg_stat_statements,
       round(percentile_cont(0.25) WITHIN GROUP (ORDER BY p.tps / s.tps)::numeric, 3) AS q1,
       round(percentile_cont(0.75) WITHIN GROUP (ORDER BY p.tps / s.tps)::numeric, 3) AS q3,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.tps / n.tps)::numeric, 4) AS perfopt_over_none,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s.tps / n.tps)::numeric, 4)
           AS pg_stat_statements_over_none
  FROM runs p
  JOIN runs s ON s.turn = p.turn AND s.workload = p.workload AND s.config = 'pg_stat_statements'
  JOIN runs n ON n.turn = p.turn AND n.workload = p.workload AND n.config = 'none'
 WHERE p.config = 'perfopt'
 GROUP BY p.workload ORDER BY p.workload"
echo "medians (and quartiles) of the ratios within a turn; target: perfopt at least 0.98 of the same"
echo "server without it (pg_stat_statements, which perfopt requires, loaded in both)"
fi

if [[ $SECTIONS == *2* ]]; then
echo
echo "== 2. the hooks' own cost per statement: PL/pgSQL loops of 200,000 primary-key lookups"
q -c "
CREATE FUNCTION loop_us(n int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE
    t0 timestamptz := clock_timestamp();
    x int;
BEGIN
    FOR i IN 1..n LOOP
        SELECT abalance INTO x FROM pgbench_accounts WHERE aid = 1 + i % 100000;
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END \$\$" -c "CREATE TABLE loops (track text, us float8)"
q -c "SELECT loop_us(50000)" >/dev/null
for i in $(seq 7); do
    for track in none all; do
        q -c "SET perfopt.track_latency = '$track'" -c "INSERT INTO loops SELECT '$track', loop_us(200000)"
    done
done
q -P footer=off -c "
SELECT track, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, 3) AS median_us_per_statement,
       round(min(us)::numeric, 3) AS min_us, round(max(us)::numeric, 3) AS max_us
  FROM loops GROUP BY track ORDER BY track"
q -At -c "
SELECT format('timing and recording one statement costs %s us (%s%% of the statement''s own time)',
              round((a - n)::numeric, 3), round((100 * (a - n) / n)::numeric, 1))
  FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FILTER (WHERE track = 'all') AS a,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FILTER (WHERE track = 'none') AS n
          FROM loops) l"
fi
[[ $SECTIONS == *3* ]] || exit 0

# 3. accuracy: the executions of one run, as the server log times them
dir=${dirs[perfopt]}
q -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q -c "SELECT perfopt.query_latency_reset()" >/dev/null
start_offset=$(stat -c %s "$dir/server.log")
benchc perfopt -S -T 10 >/dev/null
benchc perfopt -T 10 >/dev/null
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
