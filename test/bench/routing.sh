#!/usr/bin/env bash
# Throughput of route() and the simulated distribution of each algorithm.
#
#   bash test/bench/routing.sh [CALLS] [REQUESTS]
#
# 1. route() calls per second: CALLS (default 200000) calls in one
#    statement for each algorithm and with a session key, next to the real
#    alternative a router without shared memory has, one query of the
#    registry table per request (SELECT ... ORDER BY random() LIMIT 1 over
#    the healthy, non-draining rows), in the same run; then pgbench, 2
#    clients for 10 s each, of SELECT * FROM perfopt.route() against
#    the same table query and SELECT 1 (the floor of a round trip).  Three instances are registered:
#    the server itself through libpq and two TCP instances at its port.
# 2. simulate_requests(REQUESTS, algorithm) (default 200000) on the
#    simulated heterogeneous fleet at 50% and 80% load: p95 response time,
#    the coefficient of variation of utilization, overloads; adaptive
#    against round robin.
# Run as root; it starts and removes its own cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

CALLS=${1:-200000}
REQUESTS=${2:-200000}
PORT=${PORT:-5447}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "listen_addresses = '127.0.0.1'" "perfopt.health_check_interval = 1s"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
q -c "SELECT perfopt.register_instance('self', 'postgresql', 'host=127.0.0.1 port=$PORT dbname=postgres', 2)" \
  -c "SELECT perfopt.register_instance('tcp1', 'tcp', '127.0.0.1:$PORT')" \
  -c "SELECT perfopt.register_instance('tcp2', 'tcp', '127.0.0.1:$PORT')"
for _ in $(seq 30); do
    [ "$(q -At -c "SELECT count(*) FROM perfopt.instances WHERE state = 'healthy'")" = 3 ] && break
    sleep 1
done
q -P footer=off -c "SELECT name, kind, weight, state, response_ms FROM perfopt.instances"

echo "== route(): $CALLS calls in one statement"
q -P footer=off <<SQL
CREATE TEMP TABLE timings (variant text, calls int, ms float8);
CREATE FUNCTION pg_temp.timed(variant text, query text) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    INSERT INTO timings VALUES (variant, $CALLS, 1000 * extract(epoch FROM clock_timestamp() - t0));
END \$\$;
\o /dev/null
SELECT pg_temp.timed('route() ' || a, format(
    'SELECT count(*) FROM generate_series(1, $CALLS) g, LATERAL perfopt.route(NULL, CASE WHEN g > 0 THEN %L END) r', a))
  FROM unnest(ARRAY['round_robin', 'least_connections', 'weighted', 'adaptive']) a;
SELECT pg_temp.timed('route(session key)',
    'SELECT count(*) FROM generate_series(1, $CALLS) g, LATERAL perfopt.route(''user-'' || g) r');
SELECT pg_temp.timed('table query per request', '
    SELECT count(*) FROM generate_series(1, $CALLS) g, LATERAL (
        SELECT i.name FROM perfopt.instance_registry i
         WHERE NOT i.draining AND g > 0 ORDER BY random() LIMIT 1) r');
\o
SELECT variant, round((calls / (ms / 1000))::numeric) AS calls_per_s,
       round((1000 * ms / calls)::numeric, 2) AS us_per_call
  FROM timings;
SQL

echo "== pgbench, 2 clients, 10 s each"
echo 'SELECT * FROM perfopt.route();' > "$dir/route.sql"
echo "SELECT name FROM perfopt.instance_registry WHERE NOT draining ORDER BY random() LIMIT 1;" > "$dir/table.sql"
echo 'SELECT 1;' > "$dir/one.sql"
chown postgres: "$dir"/*.sql
for f in route table one; do
    tps=$(as_postgres pgbench -h "$dir" -p "$PORT" -n -c 2 -j 2 -T 10 -f "$dir/$f.sql" postgres 2>/dev/null |
          sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "$f: $tps transactions/s"
done

echo "== simulate_requests($REQUESTS, ...) on the simulated fleet"
for load in 0.5 0.8; do
    echo "-- load $load"
    q -P footer=off -c "
    WITH s AS (
        SELECT a AS algorithm, r.*
          FROM unnest(ARRAY['round_robin', 'least_connections', 'weighted', 'adaptive']) a,
               LATERAL perfopt.simulate_requests($REQUESTS, a, $load) r)
    SELECT algorithm,
           round(max(p95_ms) FILTER (WHERE instance = 'all')::numeric, 1) AS p95_ms,
           round((stddev_pop(utilization) FILTER (WHERE instance <> 'all')
                  / avg(utilization) FILTER (WHERE instance <> 'all'))::numeric, 3) AS utilization_cv,
           string_agg(round(utilization::numeric, 2)::text, ' ' ORDER BY instance)
               FILTER (WHERE instance <> 'all') AS utilizations,
           max(overloads) FILTER (WHERE instance = 'all') AS overloads
      FROM s GROUP BY algorithm ORDER BY p95_ms"
done
