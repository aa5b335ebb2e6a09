#!/usr/bin/env bash
# How much disk a week of samples takes, and how long a sample takes.
#
#   bash test/bench/metrics_disk.sh [INTERVAL_SECONDS]
#
# The sampler runs every second on a server under pgbench load (so that
# the latency rows of busy statements are there), with 20 tables in the
# database (the 10 largest are sampled); the rows of its latest sample are
# then recorded again for a whole day at INTERVAL_SECONDS (default 10, the
# default perfopt.sample_interval) into a partition of perfopt.metrics,
# whose size with its index, times 7, is a week.  Run as root; it starts
# and removes its own cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

INTERVAL=${1:-10}
PORT=${PORT:-5440}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "perfopt.sample_interval = 1s"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s 5 postgres >/dev/null 2>&1
q -c "DO \$\$ BEGIN FOR i IN 1..16 LOOP
        EXECUTE format('CREATE TABLE filler_%s AS SELECT g FROM generate_series(1, %s) g', i, i * 1000);
      END LOOP; END \$\$"
echo "sampling every second for 20 s under pgbench (2 clients) ..."
as_postgres pgbench -h "$dir" -p "$PORT" -n -c 2 -j 2 -T 20 postgres >/dev/null 2>&1

q -P footer=off -c "
SELECT count(*) AS samples, round(avg(n)) AS rows_per_sample, min(n) AS min_rows, max(n) AS max_rows
  FROM (SELECT ts, count(*) AS n FROM perfopt.metrics
         WHERE ts > (SELECT min(ts) FROM perfopt.metrics) + interval '3 s'
         GROUP BY ts) s"
q -P footer=off -c "
SELECT count(*) AS sample_runs, round(avg(duration_ms)::numeric, 2) AS mean_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::numeric, 2) AS p95_ms
  FROM perfopt.job_runs WHERE job_name = 'sample_metrics' AND status = 'succeeded'"

echo "recording the latest sample again every $INTERVAL s for a day ..."
q -c "UPDATE perfopt.jobs SET enabled = false"
q -c "
CREATE TEMP TABLE latest AS
SELECT array_agg(metric) AS metrics, array_agg(entity) AS entities, array_agg(value) AS vals
  FROM perfopt.metrics WHERE ts = (SELECT max(ts) FROM perfopt.metrics);
SELECT count(perfopt.record_metrics(t, metrics, entities,
                                    (SELECT array_agg(v * (0.9 + random() / 5)) FROM unnest(vals) v)))
  FROM latest, generate_series(timestamptz '2000-01-01 00:00:00+00',
                               timestamptz '2000-01-01 23:59:59+00',
                               make_interval(secs => $INTERVAL)) t" >/dev/null
q -c "VACUUM ANALYZE perfopt.metrics_20000101"

echo
echo "== disk use of samples every $INTERVAL s"
q -P footer=off -c "
SELECT (SELECT count(*) FROM perfopt.metrics_20000101) AS rows_per_day,
       round(pg_total_relation_size('perfopt.metrics_20000101')::numeric
             / (SELECT count(*) FROM perfopt.metrics_20000101)) AS bytes_per_row,
       pg_size_pretty(pg_total_relation_size('perfopt.metrics_20000101')) AS per_day,
       pg_size_pretty(7 * pg_total_relation_size('perfopt.metrics_20000101')) AS per_week,
       pg_size_pretty(30 * pg_total_relation_size('perfopt.metrics_20000101')) AS per_30_days"
