#!/usr/bin/env bash
# Benchmark of what sampling statements' parameters costs (issue 17).
#
#   bash test/bench/param_sampling.sh [SECONDS] [PAIRS] [SCALE]
#
# One server with shared_preload_libraries = 'pg_stat_statements, perfopt'
# at perfopt's defaults (perfopt.param_sample_every = 100), pgbench's tables
# at scale SCALE (default 10).
#
# 1. In one session, as docs/workers.md measures the latency hooks: a
#    PL/pgSQL function runs chunks of 2,000 primary-key lookups, switching
#    perfopt.param_sampling on and off from one chunk to the next (ABBA),
#    PAIRS * 10 pairs.  Lookups of two kinds, each a statement the sampler
#    considers: EXECUTE ... USING (bound parameters: the extended protocol's
#    path) and EXECUTE of a text with the key as a constant (the simple
#    protocol's path: the constants read back at parse analysis).  The
#    median of the per-pair differences, with its 95% confidence interval,
#    is what sampling costs one statement, at the default rate and at
#    param_sample_every = 1 (every statement sampled: the cost of one
#    sample); it is shown as a share of the lookup itself, and of the
#    cheapest primary-key lookup there is (a PL/pgSQL statement with a
#    cached plan, which the sampler does not consider).
# 2. pgbench select-only, 2 clients, -M simple and -M prepared, SECONDS
#    long runs (default 3), sampling on (the default) and off (PGOPTIONS),
#    in PAIRS turns (default 7), the order alternating; the median of the
#    turns' ratios with its confidence interval.
#
# Run as root; it starts and removes its own cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

SECONDS_RUN=${1:-3}
PAIRS=${2:-7}
SCALE=${3:-10}
PORT=${PORT:-5445}
SECTIONS=${SECTIONS:-12}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench-samples)
cleanup() { stop_cluster "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
start_cluster "$dir" "$PORT" "shared_buffers = '256MB'" "log_line_prefix = ''" \
    "shared_preload_libraries = 'pg_stat_statements, perfopt'"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "initializing pgbench at scale $SCALE ..."
as_postgres pgbench -h "$dir" -p "$PORT" -i -q -s "$SCALE" postgres >/dev/null 2>&1
q -c "VACUUM ANALYZE"
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"

if [[ $SECTIONS == *1* ]]; then
q -c "
CREATE FUNCTION sampling_cost(pairs int, n int, kind text, every int)
RETURNS TABLE (pair int, sampling text, us float8)
LANGUAGE plpgsql AS \$\$
DECLARE
    t0 timestamptz;
    x int;
    s text;
BEGIN
    PERFORM set_config('perfopt.param_sample_every', every::text, true);
    FOR p IN 1..pairs LOOP
        FOREACH s IN ARRAY CASE WHEN p % 2 = 0 THEN ARRAY['off', 'on'] ELSE ARRAY['on', 'off'] END LOOP
            PERFORM set_config('perfopt.param_sampling', s, true);
            t0 := clock_timestamp();
            IF kind = 'bound' THEN
                FOR i IN 1..n LOOP
                    EXECUTE 'SELECT abalance FROM pgbench_accounts WHERE aid = \$1' INTO x
                      USING 1 + (i * 7919) % 100000;
                END LOOP;
            ELSIF kind = 'constant' THEN
                FOR i IN 1..n LOOP
                    EXECUTE 'SELECT abalance FROM pgbench_accounts WHERE aid = ' || (1 + (i * 7919) % 100000) INTO x;
                END LOOP;
            ELSE
                FOR i IN 1..n LOOP
                    SELECT abalance INTO x FROM pgbench_accounts WHERE aid = 1 + (i * 7919) % 100000;
                END LOOP;
            END IF;
            pair := p;
            sampling := s;
            us := extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END \$\$" -c "CREATE TABLE loops (kind text, every int, pair int, sampling text, us float8)"
npairs=$((PAIRS * 10))
echo
echo "== 1. in one session: chunks of 2,000 primary-key lookups, param_sampling on / off (ABBA), $npairs pairs"
q -c "INSERT INTO loops SELECT 'cached', 100, * FROM sampling_cost($npairs, 2000, 'cached', 100)"
cached=$(q -At -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM loops WHERE kind = 'cached'")
printf 'a PL/pgSQL lookup with a cached plan (not sampled): %.3f us\n' "$cached"
for kind in bound constant; do
    for every in 100 1; do
        q -c "SELECT * FROM sampling_cost(5, 2000, '$kind', $every)" >/dev/null   # warm
        q -c "INSERT INTO loops SELECT '$kind', $every, * FROM sampling_cost($npairs, 2000, '$kind', $every)"
        diffs=$(q -At -c "SELECT a.us - b.us FROM loops a JOIN loops b USING (kind, every, pair)
                           WHERE kind = '$kind' AND every = $every AND a.sampling = 'on' AND b.sampling = 'off'")
        lookup=$(q -At -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM loops
                            WHERE kind = '$kind' AND every = $every AND sampling = 'off'")
        read -r m lo hi <<< "$(median_ci 4 $diffs)"
        python3 -c "
m, lo, hi, l, c = $m, $lo, $hi, $lookup, $cached
print('%-8s param_sample_every = %-3d: lookup %.3f us; sampling costs %.4f us (95%% CI %.4f to %.4f): %.2f%% of it (CI %.2f to %.2f%%), %.2f%% of the cached lookup (CI %.2f to %.2f%%)'
      % ('$kind', $every, l, m, lo, hi, 100 * m / l, 100 * lo / l, 100 * hi / l, 100 * m / c, 100 * lo / c, 100 * hi / c))"
        if [ "$every" = 1 ]; then
            # one sample's cost spread over the default's 100 statements: the share of the
            # cheapest lookup that sampling at the default rate costs, with its CI
            python3 -c "
m, lo, hi, c = $m, $lo, $hi, $cached
print('%-8s derived at param_sample_every = 100: one sample / 100 = %.4f us (CI %.4f to %.4f): %.3f%% of the cached lookup (CI %.3f to %.3f%%)'
      % ('$kind', m / 100, lo / 100, hi / 100, m / c, lo / c, hi / c))"
        fi
    done
done
echo "bound: EXECUTE ... USING (bound parameters, sampled in ExecutorStart); constant: EXECUTE of a text"
echo "with the key as a constant (sampled at parse analysis). Target: at most 1% of a primary-key lookup"
echo "at the default rate (param_sample_every = 100)"
q -P footer=off -c "SELECT * FROM perfopt.statement_samples_info()"
fi

[[ $SECTIONS == *2* ]] || exit 0
q -c "CREATE TABLE runs (turn int, protocol text, sampling text, tps float8)"
bench() {
    local sampling=$1 protocol=$2
    shift 2
    as_postgres env PGOPTIONS="-c perfopt.param_sampling=$sampling" pgbench -h "$dir" -p "$PORT" -n -j 2 -c 2 \
        -S -M "$protocol" "$@" postgres 2>/dev/null
}
echo
for protocol in simple prepared; do
    bench on "$protocol" -T 2 >/dev/null
    for turn in $(seq "$PAIRS"); do
        order=(on off)
        [ $((turn % 2)) = 0 ] && order=(off on)
        line="turn $turn, $protocol:"
        for s in "${order[@]}"; do
            tps=$(bench "$s" "$protocol" -T "$SECONDS_RUN" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            q -c "INSERT INTO runs VALUES ($turn, '$protocol', '$s', $tps)"
            line="$line $s $tps"
        done
        echo "$line"
    done
done
echo "== 2. pgbench -S -c 2 -j 2, $PAIRS turns of ${SECONDS_RUN} s runs, scale $SCALE: sampling on / off"
q -P footer=off -c "SELECT protocol, sampling, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)) AS median_tps
                      FROM runs GROUP BY 1, 2 ORDER BY 1, 2"
for protocol in simple prepared; do
    ratios=$(q -At -c "SELECT a.tps / b.tps FROM runs a JOIN runs b USING (turn, protocol)
                        WHERE protocol = '$protocol' AND a.sampling = 'on' AND b.sampling = 'off'")
    read -r m lo hi <<< "$(median_ci 4 $ratios)"
    echo "$protocol: on / off = $m (95% CI $lo-$hi)"
done
