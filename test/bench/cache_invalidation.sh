#!/usr/bin/env bash
# Benchmark of the Redis cache layer: how soon after COMMIT a key is gone,
# how fast the worker drains a backlog, and what watching costs writes.
#
#   [BASELINE=<git revision>] bash test/bench/cache_invalidation.sh [SECONDS] [PAIRS]
#
# A throwaway cluster (perfopt preloaded) and a throwaway redis-server on a
# free loopback port, both on this machine.  With BASELINE, a second pair
# of them runs perfopt as built from that git revision (`git archive`, built
# and installed into BASELINE_STAGE, default $PERFOPT_STAGE-baseline), and
# sections 1 and 3 run the two builds in turn, interleaved, in this one run.
# Both clusters run with synchronous_commit = off, so that the machine's
# shared disk does not drown the figures (it also makes the trigger's and
# the outbox's share of a transaction larger: a stricter test); SYNC=on runs
# them at PostgreSQL's default instead, where each commit waits for its
# flush, as most applications' do.  The worker reaches Redis over loopback
# TCP; REDIS_SOCKET=1 makes it use Redis's unix socket instead (perfopt.redis_host
# set to the socket's path), as it would with Redis on the database's host.
# 1. Latency: pgbench keeps a watched table changing at 1,000 and at 10,000
#    rows per second (1,000 transactions a second of 1 and of 10 rows;
#    --rate, 2 clients), while cache_probe (test/bench/cache_probe.c, libpq
#    and hiredis) makes 50 commits a second of a row of another watched
#    table and waits for its key on the channel perfopt:invalidate, which the
#    worker publishes after Redis confirmed the UNLINK.  ROUNDS (default 3)
#    rounds of SECONDS (default 20) of probes per load and build, the builds
#    alternating; p50, p99 and max measured from the moment the COMMIT
#    returned to the client.  Targets at 1,000/s: p50 < 5 ms, p99 < 50 ms;
#    and no worse than the baseline's.
# 2. Drain throughput: one transaction queues 200,000 distinct keys (all set
#    in Redis first); the time from its commit to the worker's last
#    confirmed batch, against redis-benchmark's own UNLINK rate in the same
#    run: one connection pipelining 1,000 commands (the shape of the
#    worker's traffic) and redis-benchmark's default of 50 connections
#    without pipelining.  Target: at least half of redis-benchmark's rate.
# 3. Write overhead: pgbench TPC-B-like (-c 2 -j 2, scale 10), SECONDS/2
#    runs, with cache_watch on pgbench_accounts, _tellers and _branches and
#    without, alternating, PAIRS times (default 5) per build; the median
#    ratio of the runs of a pair, with its distribution-free 95% confidence
#    interval.  Target: at least 0.90.  Beside throughput, each run's CPU
#    time per transaction of the server's processes and of its Redis
#    (/proc, the reaped backends' included): on a machine that other work
#    loads, throughput moves with a run's share of the CPUs, CPU time per
#    transaction much less; plain's over watched's is the throughput ratio
#    on a machine of their own.
#
# Run as root; it starts and removes its own servers.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

SECONDS_RUN=${1:-20}
PAIRS=${2:-5}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-5449}
SECTIONS=${SECTIONS:-123}        # which of the three parts to run
BATCH=${BATCH:-1000}             # perfopt.cache_batch_size
DELAY=${DELAY:-2ms}              # perfopt.cache_batch_delay
cache_bench_options              # SYNC and REDIS_SOCKET (bench_lib.sh)
BASELINE=${BASELINE:-}           # a git revision to compare with
BASELINE_STAGE=${BASELINE_STAGE:-${PERFOPT_STAGE:-/tmp/perfopt-stage}-baseline}

require_root
install_packages
build_and_install "$top"

builds=(new)
declare -A bins dirs ports rports rpids
bins[new]=$PG_BIN
if [ -n "$BASELINE" ]; then
    builds+=(old)
    build_baseline "$top" "$BASELINE" "$BASELINE_STAGE"
    bins[old]=$BASELINE_STAGE/usr/lib/postgresql/15/bin
fi

cleanup() {
    for b in "${builds[@]}"; do
        [ -n "${rpids[$b]:-}" ] && kill "${rpids[$b]}" 2>/dev/null && wait "${rpids[$b]}" 2>/dev/null
        [ -n "${dirs[$b]:-}" ] && { PG_BIN=${bins[$b]}; stop_cluster "${dirs[$b]}"; rm -rf "${dirs[$b]}"; }
    done
    return 0
}
trap cleanup EXIT

port=$PORT
for b in "${builds[@]}"; do
    dirs[$b]=$(postgres_tempdir "bench-cache-$b")
    ports[$b]=$port
    port=$((port + 1))
    # a free loopback port for this build's Redis
    rports[$b]=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    start_bench_redis "${dirs[$b]}" "${rports[$b]}"
    rpids[$b]=$redis_pid
    PG_BIN=${bins[$b]}
    start_cluster "${dirs[$b]}" "${ports[$b]}" "shared_buffers = '256MB'" "log_line_prefix = ''" \
        "${redis_conf[@]}" "perfopt.cache_batch_size = $BATCH" \
        "perfopt.cache_batch_delay = '$DELAY'" "max_connections = 50" "synchronous_commit = $SYNC"
done
PG_BIN=${bins[new]}
# qb BUILD psql-arguments...; q: the new build; likewise pgbb and pgb, rcb and rc
qb() { local b=$1; shift; PG_BIN=${bins[$b]} as_postgres psql -h "${dirs[$b]}" -p "${ports[$b]}" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
q() { qb new "$@"; }
pgbb() { local b=$1; shift; PG_BIN=${bins[$b]} as_postgres pgbench -h "${dirs[$b]}" -p "${ports[$b]}" -n "$@" postgres 2>&1; }
pgb() { pgbb new "$@"; }
rcb() { local b=$1; shift; redis-cli -h 127.0.0.1 -p "${rports[$b]}" "$@"; }
rc() { rcb new "$@"; }
dir=${dirs[new]}
rport=${rports[new]}

gcc -O2 -o "$dir/cache_probe" "$top/test/bench/cache_probe.c" \
    -I"$(/usr/bin/pg_config --includedir)" -lpq -lhiredis || die "could not build cache_probe"
chmod 755 "$dir/cache_probe"

for b in "${builds[@]}"; do
    qb "$b" -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
done
q -c "CREATE TABLE results (section text, name text, value float8)"
echo "perfopt.cache_batch_size = $BATCH, perfopt.cache_batch_delay = $DELAY, synchronous_commit = $SYNC, Redis over $transport, builds: ${builds[*]}"
echo "PostgreSQL on port $PORT, Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$rport, $(nproc) cores"

# Wait until the outbox of BUILD (default new) is empty
settle() {
    local b=${1:-new}
    for i in $(seq 600); do
        [ "$(qb "$b" -At -c 'SELECT count(*) FROM perfopt.cache_invalidations')" = 0 ] && return 0
        sleep 0.1
    done
    die "the outbox did not drain"
}

if [[ $SECTIONS == *1* ]]; then
for b in "${builds[@]}"; do
    qb "$b" -c "CREATE TABLE probe (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)" \
      -c "INSERT INTO probe (id) SELECT generate_series(1, 100000)" \
      -c "CREATE TABLE load (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)" \
      -c "INSERT INTO load (id) SELECT generate_series(1, 100000)" \
      -c "VACUUM ANALYZE probe, load" \
      -c "SELECT perfopt.cache_watch('probe', 'probe:{id}')" \
      -c "SELECT perfopt.cache_watch('load', 'load:{id}')" >/dev/null
done
cat > "$dir/load1.sql" <<'SQL'
\set id random(1, 100000)
UPDATE load SET v = v + 1 WHERE id = :id;
SQL
cat > "$dir/load10.sql" <<'SQL'
\set id random(1, 99990)
UPDATE load SET v = v + 1 WHERE id BETWEEN :id AND :id + 9;
SQL
chmod 644 "$dir"/load*.sql
q -c "CREATE TABLE probes (build text, rows int, round int, from_sent float8, from_commit float8)" \
  -c "CREATE TABLE loads (build text, rows int, round int, rows_per_sec float8)"

probes=$((SECONDS_RUN * 50))
echo
echo "== 1. latency from COMMIT to the key gone, under load ($ROUNDS rounds of ${SECONDS_RUN} s, $probes probes each, per build)"
for rows in 1 10; do
    for round in $(seq "$ROUNDS"); do
        order=("${builds[@]}")
        [ $((round % 2)) = 0 ] && [ ${#builds[@]} = 2 ] && order=(old new)
        for b in "${order[@]}"; do
            pgbb "$b" -c 2 -j 2 -R 1000 -T $((SECONDS_RUN + 3)) -f "$dir/load$rows.sql" > "$dir/load.out" &
            load_pid=$!
            sleep 2
            PG_BIN=${bins[$b]} as_postgres "$dir/cache_probe" "host=${dirs[$b]} port=${ports[$b]} dbname=postgres" \
                127.0.0.1 "${rports[$b]}" perfopt:invalidate "$probes" 50 > "$dir/probe.tsv"
            wait $load_pid
            tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/load.out")
            chmod 644 "$dir/probe.tsv"
            q -c "INSERT INTO loads VALUES ('$b', $rows, $round, $tps * $rows)" \
              -c "CREATE TEMP TABLE p (from_sent float8, from_commit float8)" \
              -c "\\copy p FROM '$dir/probe.tsv'" \
              -c "INSERT INTO probes SELECT '$b', $rows, $round, * FROM p"
            settle "$b"
            echo "$b, $rows row(s) a transaction, round $round: $(q -At -c "
                SELECT format('p50 %s ms, p99 %s ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_commit)::numeric, 2),
                              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_commit)::numeric, 2))
                  FROM probes WHERE build = '$b' AND rows = $rows AND round = $round")"
        done
    done
done
q -P footer=off -c "
SELECT p.build, round(avg(l.rows_per_sec)) AS load_rows_per_sec, count(*) AS probes,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_commit)::numeric, 2) AS p50_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_commit)::numeric, 2) AS p99_ms,
       round(max(from_commit)::numeric, 2) AS max_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_sent)::numeric, 2) AS p50_from_sent_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_sent)::numeric, 2) AS p99_from_sent_ms
  FROM probes p JOIN (SELECT build, rows, avg(rows_per_sec) AS rows_per_sec FROM loads GROUP BY 1, 2) l USING (build, rows)
 GROUP BY p.build, p.rows ORDER BY p.rows, p.build"
if [ ${#builds[@]} = 2 ]; then
    echo "new / old, per round (the builds ran seconds apart), median over the rounds:"
    q -P footer=off -c "
    WITH r AS (
        SELECT build, rows, round, percentile_cont(0.5) WITHIN GROUP (ORDER BY from_commit) AS p50,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY from_commit) AS p99
          FROM probes GROUP BY 1, 2, 3)
    SELECT n.rows AS rows_per_transaction,
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY n.p50 / o.p50)::numeric, 3) AS p50_new_over_old,
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY n.p99 / o.p99)::numeric, 3) AS p99_new_over_old,
           string_agg(round((n.p50 / o.p50)::numeric, 2)::text, ' ' ORDER BY n.round) AS p50_ratios
      FROM r n JOIN r o USING (rows, round) WHERE n.build = 'new' AND o.build = 'old'
     GROUP BY n.rows ORDER BY n.rows"
fi
echo "load_rows_per_sec: what pgbench reached (1,000 transactions a second of 1 and of 10 rows)"
echo "from_sent: from sending the autocommitted UPDATE, so including the commit itself"
for b in "${builds[@]}"; do
    qb "$b" -c "SELECT perfopt.cache_unwatch('load'), perfopt.cache_unwatch('probe')" >/dev/null
done
fi

if [[ $SECTIONS == *2* ]]; then
N=200000
echo
echo "== 2. drain throughput: $N distinct keys queued by one transaction, batches of $BATCH"
q -c "CREATE TABLE drain (id int PRIMARY KEY)" \
  -c "SELECT perfopt.cache_watch('drain', 'drain:{id}')" >/dev/null
for run in 1 2 3; do
    rc FLUSHALL >/dev/null
    rc EVAL "for i = 1, $N do redis.call('SET', 'drain:' .. i, 'x') end" 0 >/dev/null
    q -c "TRUNCATE drain" >/dev/null
    settle
    sent0=$(q -At -c "SELECT invalidations_sent FROM perfopt.cache_worker_state()")
    t0=$(q -At -c "INSERT INTO drain SELECT generate_series(1, $N)" -c "SELECT extract(epoch FROM clock_timestamp())")
    settle
    t1=$(q -At -c "SELECT extract(epoch FROM last_sent_at) FROM perfopt.cache_worker_state()")
    sent=$(( $(q -At -c "SELECT invalidations_sent FROM perfopt.cache_worker_state()") - sent0 ))
    left=$(rc EVAL "return #redis.call('keys', 'drain:*')" 0)
    [ "$left" = 0 ] || die "$left keys left in Redis"
    q -c "INSERT INTO results VALUES ('2', 'perfopt', $sent / ($t1 - $t0))"
    echo "run $run: $sent keys invalidated in $(q -At -c "SELECT round(($t1 - $t0)::numeric, 3)") s after COMMIT"
done
for run in 1 2 3; do
    rc FLUSHALL >/dev/null
    rc EVAL "for i = 0, $N - 1 do redis.call('SET', string.format('key:%012d', i), 'x') end" 0 >/dev/null
    p1000=$(redis-benchmark -h 127.0.0.1 -p "$rport" -c 1 -P 1000 -n $N -r $N -q UNLINK key:__rand_int__ \
        | tr '\r' '\n' | sed -n 's/.*UNLINK.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
    rc EVAL "for i = 0, $N - 1 do redis.call('SET', string.format('key:%012d', i), 'x') end" 0 >/dev/null
    c50=$(redis-benchmark -h 127.0.0.1 -p "$rport" -c 50 -n $N -r $N -q UNLINK key:__rand_int__ \
        | tr '\r' '\n' | sed -n 's/.*UNLINK.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
    q -c "INSERT INTO results VALUES ('2', 'redis-benchmark -c 1 -P 1000', $p1000),
                                     ('2', 'redis-benchmark -c 50', $c50)"
done
q -P footer=off -c "
SELECT name AS drained_by, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY value)) AS median_keys_per_sec,
       round(min(value)) AS min, round(max(value)) AS max
  FROM results WHERE section = '2' GROUP BY name ORDER BY 2 DESC"
q -At -c "
SELECT format('perfopt drains at %s of redis-benchmark -c 1 -P 1000 and %s of redis-benchmark -c 50 (target: at least 0.5)',
              round((p / b1)::numeric, 2), round((p / b50)::numeric, 2))
  FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FILTER (WHERE name = 'perfopt') AS p,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FILTER (WHERE name = 'redis-benchmark -c 1 -P 1000') AS b1,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FILTER (WHERE name = 'redis-benchmark -c 50') AS b50
          FROM results WHERE section = '2') r"
echo "(redis-benchmark's UNLINKs take random keys of the same keyspace, so some are already gone)"
q -c "SELECT perfopt.cache_unwatch('drain')" >/dev/null
fi

[[ $SECTIONS == *3* ]] || exit 0
echo
echo "== 3. write overhead: pgbench TPC-B-like, -c 2 -j 2, scale 10, $PAIRS pairs of $((SECONDS_RUN / 2)) s runs per build"
for b in "${builds[@]}"; do
    pgbb "$b" -i -q -s 10 >/dev/null
    qb "$b" -c "VACUUM ANALYZE" >/dev/null
    pgbb "$b" -c 2 -j 2 -T 3 >/dev/null
done
watch() {
    qb "$1" -c "SELECT perfopt.cache_watch('pgbench_accounts', 'account:{aid}', 'user_data'),
                       perfopt.cache_watch('pgbench_tellers', 'teller:{tid}'),
                       perfopt.cache_watch('pgbench_branches', 'branch:{bid}')" >/dev/null
}
unwatch() {
    qb "$1" -c "SELECT perfopt.cache_unwatch('pgbench_accounts'), perfopt.cache_unwatch('pgbench_tellers'),
                       perfopt.cache_unwatch('pgbench_branches')" >/dev/null
}
# CPU time (clock ticks) used so far by a build's server (the postmaster's
# own and its reaped children's, its live children's) and its Redis
server_ticks() {
    local pm t=0 p
    pm=$(head -1 "${dirs[$1]}/data/postmaster.pid")
    for p in $pm $(pgrep -P "$pm") ${rpids[$1]}; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat")))
    done
    echo "$t"
}
ticks_per_sec=$(getconf CLK_TCK)
q -c "CREATE TABLE cpu (pair int, name text, us_per_tx float8)"
for pair in $(seq "$PAIRS"); do
    for b in "${builds[@]}"; do
        order="plain watched"
        [ $((pair % 2)) = 0 ] && order="watched plain"
        line="pair $pair, $b:"
        for config in $order; do
            if [ "$config" = watched ]; then watch "$b"; else unwatch "$b"; fi
            settle "$b"
            t0=$(server_ticks "$b")
            out=$(pgbb "$b" -c 2 -j 2 -T $((SECONDS_RUN / 2)))
            settle "$b"    # the worker's share of these transactions
            t1=$(server_ticks "$b")
            tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
            cpu=$(python3 -c "print(($t1 - $t0) * 1e6 / $ticks_per_sec / $n)")
            q -c "INSERT INTO results VALUES ('3:$pair', '$b $config', $tps)" \
              -c "INSERT INTO cpu VALUES ($pair, '$b $config', $cpu)"
            line="$line $config $tps ($(printf '%.1f' "$cpu") us CPU)"
        done
        echo "$line"
    done
done
for b in "${builds[@]}"; do unwatch "$b"; done
q -P footer=off -c "
SELECT name AS config, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY value)) AS median_tps,
       round(min(value)) AS min_tps, round(max(value)) AS max_tps
  FROM results WHERE section LIKE '3:%' GROUP BY name ORDER BY name"
for b in "${builds[@]}"; do
    ratios=$(q -At -c "SELECT w.value / p.value FROM results w JOIN results p ON p.section = w.section
                        WHERE w.section LIKE '3:%' AND w.name = '$b watched' AND p.name = '$b plain'")
    read -r m lo hi <<< "$(median_ci 3 $ratios)"
    echo "$b build: watched over plain, median $m (95% CI $lo-$hi) of the throughput (target: at least 0.90)"
    ratios=$(q -At -c "SELECT p.us_per_tx / w.us_per_tx FROM cpu w JOIN cpu p USING (pair)
                        WHERE w.name = '$b watched' AND p.name = '$b plain'")
    read -r m lo hi <<< "$(median_ci 3 $ratios)"
    echo "$b build: by CPU time per transaction (plain's over watched's), median $m (95% CI $lo-$hi)"
done
q -P footer=off -c "SELECT name AS config, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us_per_tx)::numeric, 1)
                      AS median_cpu_us_per_tx FROM cpu GROUP BY name ORDER BY name"
q -At -c "SELECT format('new build: invalidations sent during the benchmark: %s; outbox now %s; last error: %s',
                        invalidations_sent, outbox_depth, coalesce(last_error, 'none'))
            FROM perfopt.cache_metrics"
