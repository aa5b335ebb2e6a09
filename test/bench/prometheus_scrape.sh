#!/usr/bin/env bash
# Scrape latency of perfopt's /metrics with 5,000 statements tracked, and the
# database's throughput while a real Prometheus scrapes it every second.
#
#   bash test/bench/prometheus_scrape.sh [STATEMENTS] [SECONDS]
#
# STATEMENTS (default 5000) distinct statements are run once each so that
# perfopt's histograms track them; then /metrics is fetched 30 times with
# curl, next to the query a pg_stat_statements exporter runs for the same
# statements (SELECT * FROM pg_stat_statements), timed by psql.  Then pgbench
# (select-only, 2 clients, SECONDS each, default 20) runs while a real
# Prometheus scrapes perfopt every second and while it does not, four
# times each, alternating.  The exporter's CPU time is read from /proc over the 30
# scrapes and over the scraped pgbench runs; with PERF=1 (needs perf) the
# exporter is also profiled over 100 more scrapes.  Run as root; it starts
# and removes its own cluster and Prometheus.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

STATEMENTS=${1:-5000}
SECONDS_EACH=${2:-20}
PORT=${PORT:-5443}
METRICS_PORT=${METRICS_PORT:-19188}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19190}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
prometheus_pid=""
trap '[ -n "$prometheus_pid" ] && kill $prometheus_pid 2>/dev/null; stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "perfopt.max_statements = $((STATEMENTS + 1000))
pg_stat_statements.max = $((STATEMENTS + 1000))
perfopt.metrics_listen = '127.0.0.1:$METRICS_PORT'"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s 10 postgres >/dev/null 2>&1

# distinct statements: 1 to 100 columns from each of 50 tables
echo "running $STATEMENTS distinct statements ..."
q -c "DO \$\$ BEGIN FOR i IN 1..50 LOOP EXECUTE format('CREATE TABLE t%s (a int)', i); END LOOP; END \$\$"
python3 - "$STATEMENTS" > "$dir/statements.sql" <<'PY'
import sys
n = int(sys.argv[1])
for k in range(n):
    table, columns = k % 50 + 1, k // 50 + 1
    print("SELECT %s FROM t%d;" % (", ".join(["a"] * columns), table))
PY
chown postgres: "$dir/statements.sql"
q -f "$dir/statements.sql" >/dev/null
tracked=$(q -At -c "SELECT count(*) FROM perfopt.query_latency")
echo "statements tracked by perfopt: $tracked"

# CPU seconds the exporter process has used so far
exporter_cpu() {
    local pid
    pid=$(pgrep -P "$(head -1 "$dir/data/postmaster.pid")" -f 'perfopt exporter' | head -1)
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$pid/stat"
}

# scrape latency, against the query a pg_stat_statements exporter runs
curl -s -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"
cpu_before=$(exporter_cpu)
for _ in $(seq 30); do
    curl -s -o "$dir/scrape.txt" -w '%{time_total}\n' "http://127.0.0.1:$METRICS_PORT/metrics"
done | sort -n > "$dir/scrape_times"
cpu_after=$(exporter_cpu)
for _ in $(seq 30); do
    q -At -c '\timing on' -c 'SELECT * FROM pg_stat_statements' | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
done | sort -n > "$dir/pgss_times"
echo "== /metrics with $tracked statements tracked ($(wc -c < "$dir/scrape.txt") bytes, $(grep -vc '^#' "$dir/scrape.txt") samples)"
awk '{ t[NR] = $1 * 1000 } END { printf "scrape (curl), ms:                      median %.1f  p95 %.1f\n", t[int(NR/2)+1], t[int(NR*0.95)] }' "$dir/scrape_times"
awk '{ t[NR] = $1 } END { printf "SELECT * FROM pg_stat_statements, ms:   median %.1f  p95 %.1f\n", t[int(NR/2)+1], t[int(NR*0.95)] }' "$dir/pgss_times"
paste "$dir/scrape_times" "$dir/pgss_times" | awk '{ s[NR] = $1 * 1000; p[NR] = $2 } END {
    printf "median scrape / median pg_stat_statements query: %.2f\n", s[int(NR/2)+1] / p[int(NR/2)+1] }'
awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "exporter CPU over these 30 scrapes: %.1f ms a scrape\n", 1000 * (b - a) / 30 }'

# PERF=1: where the exporter spends a scrape, from perf record -g over 100 more
if [ -n "${PERF:-}" ]; then
    exporter=$(pgrep -P "$(head -1 "$dir/data/postmaster.pid")" -f 'perfopt exporter' | head -1)
    perf record -F 2000 -g -o "$dir/perf.data" -p "$exporter" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 1
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"; done
    kill -INT $perf_pid; wait $perf_pid || true
    echo "== where the exporter's time goes (perf, 100 scrapes)"
    perf report -i "$dir/perf.data" --no-children --percent-limit 2 --stdio -g none 2>/dev/null | grep '%'
fi

# throughput with and without perfopt being scraped every second.  Prometheus
# runs all along (on this small machine it takes CPU of its own, whatever it
# scrapes); its configuration switches between scraping only itself and
# scraping perfopt too, by SIGHUP.
write_config() {
    {
        echo "global:"
        echo "  scrape_interval: 1s"
        echo "scrape_configs:"
        echo "  - job_name: self"
        echo "    static_configs: [{targets: ['127.0.0.1:$PROMETHEUS_PORT']}]"
        if [ "$1" = perfopt ]; then
            echo "  - job_name: perfopt"
            echo "    static_configs: [{targets: ['127.0.0.1:$METRICS_PORT']}]"
        fi
    } > "$dir/prometheus.yml"
    chown postgres: "$dir/prometheus.yml"
}
reload_prometheus() {
    pkill -HUP -f "prometheus --config.file=$dir/prometheus.yml"
    sleep 2
}
# scrapes of perfopt Prometheus made in the last run
scrape_count() {
    curl -s -G "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" \
        --data-urlencode "query=count_over_time(up{job=\"perfopt\"}[${SECONDS_EACH}s])" |
        grep -o '"[0-9]*"\]' | tr -d '"]' | head -1 || true
}
run_pgbench() {
    as_postgres pgbench -h "$dir" -p "$PORT" -n -S -c 2 -j 2 -T "$SECONDS_EACH" postgres 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
chown -R postgres: "$dir"
write_config self
runuser -u postgres -- prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$dir/prometheus.log" 2>&1 &
prometheus_pid=$!
sleep 5
declare -a without with
cpu_total=0; scrapes_total=0
for round in 1 2 3 4; do
    write_config self; reload_prometheus
    without+=("$(run_pgbench)")
    write_config perfopt; reload_prometheus
    cpu_before=$(exporter_cpu)
    with+=("$(run_pgbench)")
    cpu_after=$(exporter_cpu)
    scrapes=$(scrape_count)
    cpu_total=$(awk -v t="$cpu_total" -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { print t + b - a }')
    scrapes_total=$((scrapes_total + ${scrapes:-0}))
    echo "round $round: not scraped ${without[-1]} tps, scraped every second ${with[-1]} tps" \
         "(${scrapes:-?} scrapes, exporter CPU $(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { print b - a }') s)"
done
printf '%s\n' "${without[@]}" > "$dir/without"; printf '%s\n' "${with[@]}" > "$dir/with"
paste "$dir/without" "$dir/with" | awk '{ print $2 / $1 }' | sort -n > "$dir/ratios"
paste "$dir/without" "$dir/with" | awk -v m="$(sed -n '2,3p' "$dir/ratios" | awk '{ s += $1 } END { print s / 2 }')" \
    '{ a += $1; b += $2 } END { printf "throughput scraped / not scraped: %.3f overall, median of the rounds %.3f\n", b / a, m }'
awk -v c="$cpu_total" -v n="$scrapes_total" -v s="$SECONDS_EACH" 'BEGIN {
    if (n > 0) printf "exporter CPU: %.1f ms a scrape, %.2f%% of one core at a scrape a second\n", 1000 * c / n, 100 * c / (4 * s) }'
