#!/usr/bin/env bash
# Benchmark of metric_correlations(): does it find the pair that drives
# another, with the right direction and lag, and nothing else; how often
# does it report a pair among series that are unrelated; how fast is it.
#
#   bash test/bench/correlation.sh [CASES] [SERIES]
#
# 1. CASES recorded scenarios (default 20), each from its own seed: six hours
#    of 10-second samples where connections surge at random starts and
#    latency follows them 1 to 6 samples later (the lag drawn per case), next
#    to IO waits with surges of their own, a database size that grows, and
#    CPU noise.  Counted: the driving pair found with the right direction and
#    lag, and any other pair reported.
# 2. CASES calls over 10 unrelated series each (noise, random walks, surges at
#    random, trends): how many calls report any pair.  The design bound
#    (ALPHA in src/models/correlation.c) is one call in a hundred.
# 3. Speed: SERIES series (default 100) of a day of 10-second points, 21 lags,
#    median of 3; and, on 20 of them, against Spearman's correlation at lag 0
#    alone written in SQL (rank() over the changes, then corr()), in the same run.
# Run as root; it starts and removes its own cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

CASES=${1:-20}
SERIES=${2:-100}
PORT=${PORT:-5440}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir correlation)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
# the workers' own samples stay out of the windows used here
q -c "UPDATE perfopt.jobs SET enabled = false"

q <<'EOF'
CREATE FUNCTION scenario(seed float8, lag int, t0 timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    conn float8[] := '{}';
    surge int := 0;
    io_surge int := 0;
    c float8;
BEGIN
    PERFORM setseed(seed);
    FOR i IN 1..2160 LOOP
        IF surge = 0 AND random() < 0.02 THEN surge := 6 + floor(random() * 10)::int; END IF;
        IF io_surge = 0 AND random() < 0.02 THEN io_surge := 6 + floor(random() * 10)::int; END IF;
        c := 20 + floor(random() * 5) - 2 + CASE WHEN surge > 0 THEN 25 ELSE 0 END;
        conn := conn || c;
        INSERT INTO perfopt.metrics VALUES
            (t0 + i * interval '10 s', 'connections', 'total', c),
            (t0 + i * interval '10 s', 'latency_p95_ms', '',
             2 + 0.2 * coalesce(conn[i - lag], 20) + (random() + random() + random() - 1.5) * 0.6),
            (t0 + i * interval '10 s', 'waiting_sessions', 'IO',
             floor(random() * 3) + CASE WHEN io_surge > 0 THEN 8 ELSE 0 END),
            (t0 + i * interval '10 s', 'database_size_bytes', 'postgres', 1e9 + i * 1e5 + random() * 2e5),
            (t0 + i * interval '10 s', 'cpu_usage_pct', '', 40 + random() * 10);
        surge := greatest(surge - 1, 0);
        io_surge := greatest(io_surge - 1, 0);
    END LOOP;
END $$;

CREATE FUNCTION unrelated(seed float8, t0 timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    walk float8[] := array_fill(0::float8, ARRAY[10]);
    surge int[] := array_fill(0, ARRAY[10]);
BEGIN
    PERFORM setseed(seed);
    FOR i IN 1..2160 LOOP
        FOR s IN 1..10 LOOP
            walk[s] := walk[s] + random() - 0.5;
            IF surge[s] = 0 AND random() < 0.02 THEN surge[s] := 6 + floor(random() * 10)::int; END IF;
            INSERT INTO perfopt.metrics VALUES (t0 + i * interval '10 s', 'm' || s, '',
                CASE s % 4 WHEN 0 THEN random()
                           WHEN 1 THEN walk[s]
                           WHEN 2 THEN floor(random() * 3) + CASE WHEN surge[s] > 0 THEN 8 ELSE 0 END
                           ELSE i * 0.01 + random() END);
            surge[s] := greatest(surge[s] - 1, 0);
        END LOOP;
    END LOOP;
END $$;
CREATE TABLE found (kind text, seed int, lag int, right_pair boolean, other_pairs int);
EOF

echo "== 1. $CASES recorded scenarios: connections surge, latency follows"
for seed in $(seq "$CASES"); do
    lag=$(( (seed - 1) % 6 + 1 ))
    q -c "SELECT scenario($seed / 1000.0, $lag, timestamptz '2026-06-01 00:00+00' + $seed * interval '1 day')" >/dev/null
    q -c "INSERT INTO found
          SELECT 'scenario', $seed, $lag,
                 count(*) FILTER (WHERE metric_a = 'connections' AND metric_b = 'latency_p95_ms'
                                  AND lag = $lag * interval '10 s' AND strength > 0) = 1,
                 count(*) FILTER (WHERE NOT (metric_a = 'connections' AND metric_b = 'latency_p95_ms'))
            FROM perfopt.metric_correlations(timestamptz '2026-06-01 00:00+00' + $seed * interval '1 day',
                                             timestamptz '2026-06-02 00:00+00' + $seed * interval '1 day')"
done
q -P footer=off -c "SELECT count(*) AS cases, count(*) FILTER (WHERE right_pair) AS right_pair_direction_and_lag,
                           sum(other_pairs) AS other_pairs_reported FROM found WHERE kind = 'scenario'"

echo "== 2. $CASES calls over 10 unrelated series each (45 pairs, 21 lags)"
for seed in $(seq "$CASES"); do
    q -c "SELECT unrelated($seed / 1000.0 + 0.5, timestamptz '2027-01-01 00:00+00' + $seed * interval '1 day')" >/dev/null
    q -c "INSERT INTO found
          SELECT 'unrelated', $seed, NULL, NULL, count(*)
            FROM perfopt.metric_correlations(timestamptz '2027-01-01 00:00+00' + $seed * interval '1 day',
                                             timestamptz '2027-01-02 00:00+00' + $seed * interval '1 day')"
done
q -P footer=off -c "SELECT count(*) AS calls, count(*) FILTER (WHERE other_pairs > 0) AS calls_reporting_a_pair,
                           sum(other_pairs) AS pairs_reported FROM found WHERE kind = 'unrelated'"

echo "== 3. speed: $SERIES series x 8,640 points (a day of 10-second samples)"
q -c "INSERT INTO perfopt.metrics
      SELECT timestamptz '2028-01-01 00:00+00' + p * interval '10 s', 'speed', 's' || lpad(s::text, 3, '0'),
             (s % 7) * p * 0.001 + random()
        FROM generate_series(1, $SERIES) s, generate_series(1, 8640) p"
q -c "INSERT INTO perfopt.metrics SELECT ts, 'speed20', entity, value FROM perfopt.metrics
       WHERE metric = 'speed' AND entity <= 's020'"
q -c "ANALYZE perfopt.metrics_default"
ms() { q -At -c "\\timing on" -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
all=() c20=() s20=()
for i in 1 2 3; do
    all+=("$(ms "SELECT count(*) FROM perfopt.metric_correlations('2028-01-01 00:00+00', '2028-01-02 00:00+00')")")
    c20+=("$(ms "SELECT count(*) FROM perfopt.metric_correlations('2028-01-01 00:00+00', '2028-01-02 00:00+00',
                   max_lag => 0, metrics => ARRAY['speed20'])")")
    s20+=("$(ms "WITH d AS (SELECT entity, ts, value - lag(value) OVER (PARTITION BY entity ORDER BY ts) AS change
                              FROM perfopt.metrics WHERE metric = 'speed20'
                               AND ts >= '2028-01-01 00:00+00' AND ts < '2028-01-02 00:00+00'),
                      r AS (SELECT entity, ts, rank() OVER (PARTITION BY entity ORDER BY change) AS r FROM d
                             WHERE change IS NOT NULL)
                 SELECT count(*) FROM (SELECT a.entity, b.entity, corr(a.r, b.r) FROM r a JOIN r b USING (ts)
                                        WHERE a.entity < b.entity GROUP BY 1, 2) x")")
done
echo "metric_correlations, $SERIES series, 21 lags: $(median3 "${all[@]}") ms (median of 3)"
echo "20 series at lag 0: metric_correlations $(median3 "${c20[@]}") ms, Spearman in SQL $(median3 "${s20[@]}") ms," \
     "ratio $(awk -v a="$(median3 "${c20[@]}")" -v b="$(median3 "${s20[@]}")" 'BEGIN { printf "%.3f", a / b }')"
