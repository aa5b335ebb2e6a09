#!/usr/bin/env bash
# Benchmark of the Redis cache layer: how soon after COMMIT a key is gone,
# how fast the worker drains a backlog, and what watching costs writes.
#
#   bash test/bench/cache_invalidation.sh [SECONDS] [PAIRS]
#
# One throwaway cluster (perfopt preloaded) and one throwaway redis-server
# on a free loopback port, both on this machine.
# 1. Latency: pgbench keeps a watched table changing at 1,000 and at 10,000
#    rows per second (1,000 transactions a second of 1 and of 10 rows;
#    --rate, 2 clients), while cache_probe (test/bench/cache_probe.c, libpq
#    and hiredis) makes 50 commits a second of a row of another watched
#    table and waits for its key on the channel perfopt:invalidate, which the
#    worker publishes after Redis confirmed the UNLINK.  p50, p99 and max
#    over SECONDS (default 20) of probes, measured from the moment the
#    COMMIT returned to the client.  Targets at 1,000/s: p50 < 5 ms,
#    p99 < 50 ms.
# 2. Drain throughput: one transaction queues 200,000 distinct keys (all set
#    in Redis first); the time from its commit to the worker's last
#    confirmed batch, against redis-benchmark's own UNLINK rate in the same
#    run: one connection pipelining 1,000 commands (the shape of the
#    worker's traffic) and redis-benchmark's default of 50 connections
#    without pipelining.  Target: at least half of redis-benchmark's rate.
# 3. Write overhead: pgbench TPC-B-like (-c 2 -j 2, scale 10), SECONDS/2
#    runs, with cache_watch on pgbench_accounts, _tellers and _branches and
#    without, alternating PAIRS times (default 5); the median ratio of the
#    runs of a pair.  Target: at least 0.85.
#
# Run as root; it starts and removes its own servers.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

SECONDS_RUN=${1:-20}
PAIRS=${2:-5}
PORT=${PORT:-5449}
SECTIONS=${SECTIONS:-123}        # which of the three parts to run
BATCH=${BATCH:-1000}             # perfopt.cache_batch_size
DELAY=${DELAY:-2ms}              # perfopt.cache_batch_delay

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench-cache)
redis_pid=""
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    stop_cluster "$dir"
    rm -rf "$dir"
    return 0
}
trap cleanup EXIT

# a free loopback port for Redis
rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no &
redis_pid=$!
rc() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }
for i in $(seq 50); do [ "$(rc PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done

start_cluster "$dir" "$PORT" "shared_buffers = '256MB'" "log_line_prefix = ''" \
    "perfopt.redis_port = $rport" "perfopt.cache_batch_size = $BATCH" \
    "perfopt.cache_batch_delay = '$DELAY'" "max_connections = 50"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
pgb() { as_postgres pgbench -h "$dir" -p "$PORT" -n "$@" postgres 2>&1; }

gcc -O2 -o "$dir/cache_probe" "$top/test/bench/cache_probe.c" \
    -I"$(/usr/bin/pg_config --includedir)" -lpq -lhiredis || die "could not build cache_probe"
chown postgres: "$dir/cache_probe"

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
q -c "CREATE TABLE results (section text, name text, value float8)"
echo "perfopt.cache_batch_size = $BATCH, perfopt.cache_batch_delay = $DELAY"
echo "PostgreSQL on port $PORT, Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$rport, $(nproc) cores"

# Wait until the outbox is empty
settle() {
    for i in $(seq 600); do
        [ "$(q -At -c 'SELECT count(*) FROM perfopt.cache_invalidations')" = 0 ] && return 0
        sleep 0.1
    done
    die "the outbox did not drain"
}

if [[ $SECTIONS == *1* ]]; then
q -c "CREATE TABLE probe (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)" \
  -c "INSERT INTO probe (id) SELECT generate_series(1, 100000)" \
  -c "CREATE TABLE load (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)" \
  -c "INSERT INTO load (id) SELECT generate_series(1, 100000)" \
  -c "VACUUM ANALYZE probe, load" \
  -c "SELECT perfopt.cache_watch('probe', 'probe:{id}')" \
  -c "SELECT perfopt.cache_watch('load', 'load:{id}')" >/dev/null
cat > "$dir/load1.sql" <<'EOF'
\set id random(1, 100000)
UPDATE load SET v = v + 1 WHERE id = :id;
EOF
cat > "$dir/load10.sql" <<'EOF'
\set id random(1, 99990)
UPDATE load SET v = v + 1 WHERE id BETWEEN :id AND :id + 9;
EOF
chown postgres: "$dir"/load*.sql

probes=$((SECONDS_RUN * 50))
echo
echo "== 1. latency from COMMIT to the key gone, under load (${SECONDS_RUN} s, $probes probes each)"
for rows in 1 10; do
    pgb -c 2 -j 2 -R 1000 -T $((SECONDS_RUN + 3)) -f "$dir/load$rows.sql" > "$dir/load$rows.out" &
    load_pid=$!
    sleep 2
    as_postgres "$dir/cache_probe" "host=$dir port=$PORT dbname=postgres" 127.0.0.1 "$rport" \
        perfopt:invalidate "$probes" 50 > "$dir/probe$rows.tsv"
    wait $load_pid
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$dir/load$rows.out")
    late=$(sed -n 's/.*number of transactions above the .* \([0-9]*\) (.*/\1/p' "$dir/load$rows.out")
    q -c "INSERT INTO results VALUES ('1', 'load_rows_per_sec_$rows', $tps * $rows)"
    chown postgres: "$dir/probe$rows.tsv"
    q -c "CREATE TABLE probe$rows (from_sent float8, from_commit float8)" \
      -c "\\copy probe$rows FROM '$dir/probe$rows.tsv'"
    settle
done
q -P footer=off -c "
SELECT load_rows_per_sec, probes,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_commit)::numeric, 2) AS p50_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_commit)::numeric, 2) AS p99_ms,
       round(max(from_commit)::numeric, 2) AS max_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_sent)::numeric, 2) AS p50_from_sent_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY from_sent)::numeric, 2) AS p99_from_sent_ms
  FROM (SELECT 1 AS rows, * FROM probe1 UNION ALL SELECT 10, * FROM probe10) p
  JOIN (SELECT name, round(value) AS load_rows_per_sec FROM results WHERE section = '1') r
    ON r.name = 'load_rows_per_sec_' || p.rows
  CROSS JOIN LATERAL (SELECT count(*) AS probes FROM probe1) c
 GROUP BY load_rows_per_sec, probes ORDER BY load_rows_per_sec"
echo "load_rows_per_sec: what pgbench reached (1,000 transactions a second of 1 and of 10 rows)"
echo "from_sent: from sending the autocommitted UPDATE, so including the commit's own fsync"
q -c "SELECT perfopt.cache_unwatch('load'), perfopt.cache_unwatch('probe')" >/dev/null
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
echo "== 3. write overhead: pgbench TPC-B-like, -c 2 -j 2, scale 10, $PAIRS pairs of $((SECONDS_RUN / 2)) s runs"
pgb -i -q -s 10 >/dev/null
q -c "VACUUM ANALYZE" >/dev/null
watch() {
    q -c "SELECT perfopt.cache_watch('pgbench_accounts', 'account:{aid}', 'user_data'),
                 perfopt.cache_watch('pgbench_tellers', 'teller:{tid}'),
                 perfopt.cache_watch('pgbench_branches', 'branch:{bid}')" >/dev/null
}
unwatch() {
    q -c "SELECT perfopt.cache_unwatch('pgbench_accounts'), perfopt.cache_unwatch('pgbench_tellers'),
                 perfopt.cache_unwatch('pgbench_branches')" >/dev/null
}
pgb -c 2 -j 2 -T 3 >/dev/null
for pair in $(seq "$PAIRS"); do
    order="plain watched"
    [ $((pair % 2)) = 0 ] && order="watched plain"
    line="pair $pair:"
    for config in $order; do
        if [ "$config" = watched ]; then watch; else unwatch; fi
        settle
        tps=$(pgb -c 2 -j 2 -T $((SECONDS_RUN / 2)) | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        q -c "INSERT INTO results VALUES ('3:$pair', '$config', $tps)"
        line="$line $config $tps"
    done
    echo "$line"
done
unwatch
q -P footer=off -c "
SELECT name AS config, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY value)) AS median_tps,
       round(min(value)) AS min_tps, round(max(value)) AS max_tps
  FROM results WHERE section LIKE '3:%' GROUP BY name ORDER BY name"
q -At -c "
SELECT format('watched over plain: median %s (quartiles %s-%s) of the throughput (target: at least 0.85)',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY w.value / p.value)::numeric, 3),
              round(percentile_cont(0.25) WITHIN GROUP (ORDER BY w.value / p.value)::numeric, 3),
              round(percentile_cont(0.75) WITHIN GROUP (ORDER BY w.value / p.value)::numeric, 3))
  FROM results w JOIN results p ON p.section = w.section AND p.name = 'plain'
 WHERE w.section LIKE '3:%' AND w.name = 'watched'"
q -At -c "SELECT format('invalidations sent during the benchmark: %s; outbox now %s; last error: %s',
                        invalidations_sent, outbox_depth, coalesce(last_error, 'none'))
            FROM perfopt.cache_metrics"
