#!/usr/bin/env bash
# Benchmark: perfopt.analyze_query against a plain EXPLAIN of the same
# statement, on the 22 TPC-H-derived queries, in the same cluster and run.
#
#   bash test/bench/analyze_query.sh [TPCH_DIR] [ITERATIONS] [SCALE]
#
# TPCH_DIR defaults to ../shared/data/tpch (schema_gen.sql and queries/),
# ITERATIONS to 200, SCALE (TPC-H scale factor) to 0.1.  Run as root; it
# starts and removes its own cluster.  JIT is off so that EXPLAIN is as
# fast as it can be (with JIT on, EXPLAIN of the costliest queries compiles
# expressions and takes several times longer).
#
# Two measures:
#  - in one statement: a PL/pgSQL loop times each call, alternating the
#    two, with no client round trip;
#  - one statement per call: pgbench runs each as its own statement, as a
#    user would, so analyze_query reads pg_stat_statements every time;
#    the figure includes the client round trip, the same for both.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

TPCH=${1:-$top/../shared/data/tpch}
ITERATIONS=${2:-200}
SCALE=${3:-0.1}
PORT=${PORT:-5434}

[ -f "$TPCH/schema_gen.sql" ] && [ -d "$TPCH/queries" ] \
    || die "TPC-H data not found in $TPCH (give its path as the first argument)"

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "jit = off"
run_psql() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "loading TPC-H-like data at scale $SCALE ..."
cp "$TPCH/schema_gen.sql" "$dir/"
chown postgres: "$dir/schema_gen.sql"
run_psql -v sf="$SCALE" -f "$dir/schema_gen.sql" >/dev/null 2>&1
run_psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"

# the statements, one file each, loaded into bench_queries
tpch_statements "$TPCH" "$dir"
run_psql -f "$dir/load.sql"

echo "in one statement ($ITERATIONS calls of each, alternating) ..."
run_psql -c "CREATE TABLE loop_us (name text, analyze_us float8, explain_us float8)" -c "
DO \$\$
DECLARE
    r record;
    t0 timestamptz;
    a float8;
    e float8;
BEGIN
    FOR r IN SELECT * FROM bench_queries ORDER BY name LOOP
        PERFORM * FROM perfopt.analyze_query(r.sql);   -- warm the caches
        EXECUTE 'EXPLAIN ' || r.sql;
        a := 0;
        e := 0;
        FOR i IN 1..$ITERATIONS LOOP
            t0 := clock_timestamp();
            PERFORM * FROM perfopt.analyze_query(r.sql);
            a := a + extract(epoch FROM clock_timestamp() - t0);
            t0 := clock_timestamp();
            EXECUTE 'EXPLAIN ' || r.sql;
            e := e + extract(epoch FROM clock_timestamp() - t0);
        END LOOP;
        INSERT INTO loop_us VALUES (r.name, a / $ITERATIONS * 1e6, e / $ITERATIONS * 1e6);
    END LOOP;
END \$\$"

echo "one statement per call (pgbench, $ITERATIONS calls of each) ..."
run_psql -c "CREATE TABLE pgbench_us (name text, analyze_us float8, explain_us float8)"
latency_us() {
    as_postgres pgbench -h "$dir" -p "$PORT" -n -M simple -t "$ITERATIONS" -f "$1" postgres 2>/dev/null \
        | awk '/^latency average/ { print $4 * 1000 }'
}
for f in "$dir"/q/*.sql; do
    name=$(basename "$f" .sql)
    { printf 'SELECT * FROM perfopt.analyze_query($bench$'; cat "$f"; printf '$bench$);\n'; } > "$dir/a.pgbench"
    { printf 'EXPLAIN '; cat "$f"; printf ';\n'; } > "$dir/e.pgbench"
    chown postgres: "$dir"/*.pgbench
    latency_us "$dir/a.pgbench" > /dev/null    # warm up
    a=$(latency_us "$dir/a.pgbench")
    e=$(latency_us "$dir/e.pgbench")
    run_psql -c "INSERT INTO pgbench_us VALUES ('$name', $a, $e)"
done

echo
echo "perfopt.analyze_query against EXPLAIN, microseconds per call (TPC-H-like, scale $SCALE):"
run_psql -P footer=off -c "
SELECT l.name AS query,
       round(l.analyze_us) AS loop_analyze_us, round(l.explain_us) AS loop_explain_us,
       round((l.analyze_us / l.explain_us)::numeric, 2) AS loop_ratio,
       round(p.analyze_us) AS stmt_analyze_us, round(p.explain_us) AS stmt_explain_us,
       round((p.analyze_us / p.explain_us)::numeric, 2) AS stmt_ratio
  FROM loop_us l JOIN pgbench_us p USING (name) ORDER BY l.name"
run_psql -P footer=off -c "
SELECT 'in one statement' AS measure, round(sum(analyze_us)) AS analyze_us_all_22,
       round(sum(explain_us)) AS explain_us_all_22,
       round((sum(analyze_us) / sum(explain_us))::numeric, 3) AS ratio,
       round(max(analyze_us / explain_us)::numeric, 2) AS worst_query_ratio
  FROM loop_us
UNION ALL
SELECT 'one statement per call', round(sum(analyze_us)), round(sum(explain_us)),
       round((sum(analyze_us) / sum(explain_us))::numeric, 3),
       round(max(analyze_us / explain_us)::numeric, 2)
  FROM pgbench_us"
run_psql -At -c "SELECT 'pg_stat_statements entries at the end: ' || count(*) FROM pg_stat_statements"
echo "target: analyze_query costs at most 1.5x EXPLAIN"
