#!/usr/bin/env bash
# Quality and speed of perfopt.detect_anomalies().
#
#   bash test/bench/anomaly_nab.sh [NAB_DIR] [NAB_SCORE]
#
# NAB_DIR (default ../shared/data/nab) holds windows.json and
# data/<folder>/<series>.csv; NAB_SCORE (default ../shared/tools/nab_score.py)
# scores detections the way the Numenta Anomaly Benchmark does.  Every series
# goes through detect_anomalies() with its defaults (threshold
# perfopt.anomaly_threshold, 3.5), its points in file order (times may
# repeat), and, in the same run, through a plain
# z-score detector in SQL (NAB's "windowed Gaussian": each point scored by
# the normal probability of its deviation from the mean and standard
# deviation of the 6,400 points before it), the detector the issue compares
# with; the scorer picks its best threshold.  It prints the scores on all
# series, each labelled category's, and the leave-one-category-out mean of
# test/bench/anomaly_cv.py (the detector's core built outside the server,
# its constants chosen on three categories and scored on the fourth; the
# script also checks that the core gives the SQL function's verdicts).  Then
# both detectors run over one million one-minute points (a daily cycle, a
# trend, noise and spikes): interleaved pairs, the median ratio.  Run as
# root; it starts and removes its own cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

NAB_DIR=$(cd "${1:-$top/../shared/data/nab}" 2>/dev/null && pwd) || {
    echo "NAB data not found at ${1:-$top/../shared/data/nab} (the default is ../shared/data/nab" \
         "next to the repository): pass its directory as first argument" >&2
    exit 2
}
NAB_SCORE=${2:-$top/../shared/tools/nab_score.py}
[ -f "$NAB_DIR/windows.json" ] || { echo "no windows.json in $NAB_DIR" >&2; exit 2; }
[ -f "$NAB_SCORE" ] || { echo "scorer not found at $NAB_SCORE: pass it as second argument" >&2; exit 2; }
PORT=${PORT:-5441}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" ""
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
q -c "CREATE TABLE nab (series text, i int, ts timestamptz, value float8)"
for f in "$NAB_DIR"/data/*/*.csv; do
    rel=${f#"$NAB_DIR"/data/}
    # NAB's times carry no zone: read them as UTC; i is the line in the file
    tail -n +2 "$f" | awk -v rel="$rel" '{ print rel "," NR "," $0 }' | q -c "SET timezone = UTC" \
        -c "\\copy nab FROM STDIN WITH (FORMAT csv)"
done
q -c "CREATE INDEX ON nab (series, ts)" -c "ANALYZE nab"

# One results directory per detector, as nab_score.py reads them
write_results() {
    local detector=$1 query=$2 out="$dir/results-$1" rel
    mkdir -p "$out"
    for rel in $(q -At -c "SELECT DISTINCT series FROM nab ORDER BY 1"); do
        mkdir -p "$out/$(dirname "$rel")"
        q -c "SET timezone = UTC" -c "\\copy (${query//@SERIES@/$rel}) TO STDOUT WITH (FORMAT csv, HEADER)" \
            > "$out/$rel"
    done
    chown -R postgres: "$out"
}

write_results perfopt "
SELECT to_char(d.ts, 'YYYY-MM-DD HH24:MI:SS') AS timestamp, d.value,
       d.is_anomaly::int AS anomaly_score
  FROM perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY i) FROM nab WHERE series = '@SERIES@'),
                                (SELECT array_agg(value ORDER BY i) FROM nab WHERE series = '@SERIES@')) d"

write_results zscore "
SELECT to_char(ts, 'YYYY-MM-DD HH24:MI:SS') AS timestamp, value,
       coalesce(2 / (1 + exp(-1.702 * abs(value - mean) / nullif(sd, 0))) - 1, 0) AS anomaly_score
  FROM (SELECT ts, value,
               avg(value) OVER w AS mean, stddev_samp(value) OVER w AS sd
          FROM nab WHERE series = '@SERIES@'
        WINDOW w AS (ORDER BY ts ROWS BETWEEN 6400 PRECEDING AND 1 PRECEDING)) s"

echo "NAB: $(ls "$dir"/results-perfopt/*/*.csv | wc -l) series, $(q -At -c "SELECT count(*) FROM nab") points"
echo "== perfopt.detect_anomalies (threshold 3.5, no per-series setting): all series, NAB@0.50 is the score"
python3 "$NAB_SCORE" "$NAB_DIR/windows.json" "$dir/results-perfopt"
echo "== perfopt.detect_anomalies, each labelled category (standard profile)"
python3 "$top/test/bench/anomaly_cv.py" --nab "$NAB_DIR" --scorer "$NAB_SCORE" --score "$dir/results-perfopt"
echo "== windowed z-score (NAB's windowed Gaussian: the normal tail probability against the 6,400 earlier points)"
python3 "$NAB_SCORE" "$NAB_DIR/windows.json" "$dir/results-zscore"
echo "== leave-one-category-out (test/bench/anomaly_cv.py: the core built outside the server)"
python3 "$top/test/bench/anomaly_cv.py" --nab "$NAB_DIR" --scorer "$NAB_SCORE" --same-as "$dir/results-perfopt" \
    | grep -v '^setting'

# Speed: one million one-minute points, against the z-score in SQL
q -c "CREATE TABLE million AS
      SELECT timestamptz '2026-01-01 00:00+00' + g * interval '1 minute' AS ts,
             100 + 30 * sin(2 * pi() * g / 1440) + g * 1e-4 + 5 * random()
               + CASE WHEN g % 50000 = 0 THEN 80 ELSE 0 END AS value
        FROM generate_series(1, 1000000) g"
q -c "CREATE TABLE million_arrays AS
      SELECT array_agg(ts ORDER BY ts) AS times, array_agg(value ORDER BY ts) AS vals FROM million"
time_ms() {
    q -At -c "\\timing on" -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
# the z-score in SQL over the same points, in its cheapest form: a window
# over all earlier points (avg and stddev_samp of float8 have no inverse
# transition, so the 6,400-point moving frame of the quality run recomputes
# each frame and costs thousands of times more; this is the stricter yardstick)
zquery="SELECT count(*) FILTER (WHERE abs(value - mean) >= 3.5 * sd)
          FROM (SELECT value, avg(value) OVER w AS mean, stddev_samp(value) OVER w AS sd
                  FROM million
                WINDOW w AS (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) s"
dquery="SELECT count(*) FILTER (WHERE is_anomaly) FROM million_arrays, perfopt.detect_anomalies(times, vals)"
uquery="SELECT count(*) FROM million_arrays, unnest(times, vals)"
pairs=""
for k in 1 2 3 4 5; do  # interleaved pairs
    d=$(time_ms "$dquery"); z=$(time_ms "$zquery")
    pairs="$pairs$d $z
"
done
unpack=$(time_ms "$uquery")
echo "== speed, 1,000,000 points (5 interleaved pairs, medians)"
printf '%s' "$pairs" | sort -n -k1 | awk '{ d[NR] = $1 } END { printf "detect_anomalies:            %s ms\n", d[3] }'
printf '%s' "$pairs" | sort -n -k2 | awk '{ z[NR] = $2 } END { printf "windowed z-score in SQL:     %s ms\n", z[3] }'
echo "unnest of the same arrays:   $unpack ms"
printf '%s' "$pairs" | awk '{ print $1 / $2 }' | sort -n | awk '{ r[NR] = $1 } END { printf "detect_anomalies / z-score:  %.2f (median of the pairs\x27 ratios)\n", r[3] }'
