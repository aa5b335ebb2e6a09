#!/usr/bin/env bash
# Quality and speed of perfopt.forecast().
#
#   bash test/bench/forecast_m4.sh [M4_DIR] [M4_SCORE]
#
# M4_DIR (default ../shared/data/m4) holds Hourly-train.csv and
# Hourly-test.csv; M4_SCORE (default ../shared/tools/m4_score.py) prints
# sMAPE, MASE and OWA against Naive2.  Every series is forecast 48 hours
# ahead by forecast() with its defaults, scored next to the seasonal naive
# and Naive2 baselines; the share of the test values inside the
# [optimistic, pessimistic] interval (80% nominal) is printed too.  Then a
# 90-day hourly forecast from a year of hourly history is timed against a
# linear regression done in SQL.  Run as root; it starts and removes its own
# cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

M4_DIR=$(cd "${1:-$top/../shared/data/m4}" 2>/dev/null && pwd) || {
    echo "M4 data not found at ${1:-$top/../shared/data/m4}: pass its directory" >&2
    exit 2
}
M4_SCORE=${2:-$top/../shared/tools/m4_score.py}
[ -f "$M4_DIR/Hourly-train.csv" ] && [ -f "$M4_DIR/Hourly-test.csv" ] ||
    { echo "no Hourly-train.csv and Hourly-test.csv in $M4_DIR" >&2; exit 2; }
[ -f "$M4_SCORE" ] || { echo "scorer not found at $M4_SCORE: pass it as second argument" >&2; exit 2; }
PORT=${PORT:-5442}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" ""
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"

# wide CSV (id, V2, V3, ...) to rows (id, position, value)
long() {
    python3 -c '
import csv, sys
for row in csv.reader(open(sys.argv[1])):
    if not row or row[0] in ("V1", "id"):
        continue
    values = [v for v in row[1:] if v not in ("", "NA")]
    for i, v in enumerate(values):
        print(f"{row[0]},{i},{v}")' "$1"
}
q -c "CREATE TABLE m4_train (id text, t int, value float8)" \
  -c "CREATE TABLE m4_test (id text, t int, value float8)"
long "$M4_DIR/Hourly-train.csv" | q -c "\\copy m4_train FROM STDIN WITH (FORMAT csv)"
long "$M4_DIR/Hourly-test.csv" | q -c "\\copy m4_test FROM STDIN WITH (FORMAT csv)"

# hour t of a series at an arbitrary origin: forecast() reads only the spacing
q -c "CREATE TABLE m4_forecasts AS
      SELECT s.id, f.ts, row_number() OVER (PARTITION BY s.id ORDER BY f.ts) - 1 AS h,
             f.baseline, f.optimistic, f.pessimistic, f.confidence
        FROM (SELECT id, array_agg(timestamptz '2000-01-03 00:00+00' + t * interval '1 hour' ORDER BY t) AS times,
                     array_agg(value ORDER BY t) AS vals
                FROM m4_train GROUP BY id) s,
             LATERAL perfopt.forecast(s.times, s.vals, interval '48 hours', interval '1 hour') f"
q -At -c "SELECT id || ',' || string_agg(baseline::text, ',' ORDER BY h)
            FROM m4_forecasts GROUP BY id ORDER BY id" > "$dir/forecasts.csv"

echo "M4 hourly: $(q -At -c "SELECT count(DISTINCT id) FROM m4_train") series, 48-hour forecasts"
echo "seasonal naive:   $(python3 "$M4_SCORE" "$M4_DIR/Hourly-train.csv" "$M4_DIR/Hourly-test.csv" --baseline snaive)"
echo "naive2:           $(python3 "$M4_SCORE" "$M4_DIR/Hourly-train.csv" "$M4_DIR/Hourly-test.csv" --baseline naive2)"
echo "perfopt.forecast: $(python3 "$M4_SCORE" "$M4_DIR/Hourly-train.csv" "$M4_DIR/Hourly-test.csv" "$dir/forecasts.csv")"
q -P footer=off -c "
SELECT round(100.0 * avg((t.value BETWEEN f.optimistic AND f.pessimistic)::int), 1)
           AS interval_coverage_pct,
       round(avg(f.confidence)::numeric, 1) AS mean_confidence
  FROM m4_forecasts f
  JOIN (SELECT id, t - min(t) OVER (PARTITION BY id) AS h, value FROM m4_test) t
    ON t.id = f.id AND t.h = f.h"

# Speed: 90 days ahead from a year of hourly points
q -c "CREATE TABLE year AS
      SELECT array_agg(timestamptz '2025-01-01 00:00+00' + g * interval '1 hour' ORDER BY g) AS times,
             array_agg(1000 + g * 0.05 + 200 * sin(2 * pi() * g / 24) + 80 * sin(2 * pi() * g / 168)
                       + 30 * random() ORDER BY g) AS vals
        FROM generate_series(0, 8759) g"
time_ms() {
    q -At -c "\\timing on" -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
best() {  # the fastest of five runs, in ms
    for _ in 1 2 3 4 5; do time_ms "$1"; done | sort -n | head -1
}
ours=$(best "SELECT count(*) FROM year, perfopt.forecast(times, vals, interval '90 days', interval '1 hour')")
regression=$(best "SELECT count(*) FROM
                    (SELECT regr_slope(v, e) AS slope, regr_intercept(v, e) AS icpt, max(e) AS last
                       FROM year, unnest(times, vals) AS u(t, v), LATERAL extract(epoch FROM t) AS e) r,
                    LATERAL (SELECT icpt + slope * (last + 3600 * h) FROM generate_series(1, 2160) h) f")
echo "== speed, 90-day hourly forecast from 8,760 hourly points (best of 5)"
echo "forecast():                    $ours ms"
echo "linear regression in SQL:      $regression ms"
awk -v a="$ours" -v b="$regression" 'BEGIN { printf "forecast / linear regression:  %.1f\n", a / b }'
