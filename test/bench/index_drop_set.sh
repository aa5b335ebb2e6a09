#!/usr/bin/env bash
# Benchmark: perfopt.index_drop_candidates (checked as a set, 1.1.0) against
# the same view as 1.0.0 defined it (each row judged alone), on the 22
# TPC-H-derived queries, in the same cluster and run.
#
#   bash test/bench/index_drop_set.sh [TPCH_DIR] [SCALE] [PAIRS]
#
# TPCH_DIR defaults to ../shared/data/tpch, SCALE to 0.1, PAIRS (timed pairs
# of reads of the two views, interleaved) to 7.  Run as root; it starts and
# removes its own cluster.
#
# The schema: the keys, the advisor's 25 MB set for the 22 queries, and a
# copy of each of those indexes made before the workload runs (so that
# of each pair the planner reads one and the other looks unused and
# duplicate).  The workload then runs once, recorded by
# pg_stat_statements.  Printed for each view: its rows, the median time of
# a read, and how many of the 22 statements plan more than 1 % costlier
# when every row is followed (EXPLAIN, each set tried in a transaction
# that is rolled back).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

TPCH=${1:-$top/../shared/data/tpch}
SCALE=${2:-0.1}
PAIRS=${3:-7}
PORT=${PORT:-5436}

[ -f "$TPCH/schema_gen.sql" ] && [ -d "$TPCH/queries" ] \
    || die "TPC-H data not found in $TPCH (give its path as the first argument)"

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "jit = off" "max_parallel_workers_per_gather = 0" "autovacuum = off"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "loading TPC-H-like data at scale $SCALE ..."
cp "$TPCH/schema_gen.sql" "$top/test/bench/index_drop_candidates_1_0.sql" "$dir/"
chown postgres: "$dir"/*.sql
q -v sf="$SCALE" -f "$dir/schema_gen.sql" >/dev/null 2>&1
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" -c "VACUUM ANALYZE"
q -f "$dir/index_drop_candidates_1_0.sql"

# the statements, one file each, loaded into bench_queries
tpch_statements "$TPCH" "$dir"
q -f "$dir/load.sql"

echo "the advisor's 25 MB set, and a copy of each index ..."
q -At -c "SELECT index_def || ';' FROM perfopt.recommend_indexes_for(
              ARRAY(SELECT sql FROM bench_queries ORDER BY name), NULL, 25, 0) ORDER BY rank" > "$dir/set.sql"
chown postgres: "$dir/set.sql"
q -f "$dir/set.sql"
q -f "$dir/set.sql"
q -c "ANALYZE"
q -At -c "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisunique" | sed 's/^/indexes beside the keys: /'

echo "the workload, once ..."
q -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset()" >/dev/null
for f in "$dir"/q/*.sql; do
    q -c "SET statement_timeout = '60s'" -f "$f" >/dev/null 2>&1 || true
done
q -c "SELECT pg_stat_force_next_flush()" >/dev/null

# The planned cost of each statement, after $1 (in a transaction rolled back)
costs() {
    {
        echo "BEGIN;"
        echo "$1"
        for f in "$dir"/q/*.sql; do
            echo "EXPLAIN (FORMAT JSON) $(cat "$f");"
        done
        echo "ROLLBACK;"
    } > "$dir/costs.sql"
    chown postgres: "$dir/costs.sql"
    q -At -f "$dir/costs.sql" | tr -d '\n ' | grep -o '"Plan":{"NodeType":"[^"]*"[^}]*"TotalCost":[0-9.]*' \
        | sed 's/.*"TotalCost"://'
}
costs "" > "$dir/before"
[ "$(wc -l < "$dir/before")" = 22 ] || die "expected 22 plans, got $(wc -l < "$dir/before")"

report() {
    local view=$1 drops worse
    drops=$(q -At -c "SELECT string_agg(format('DROP INDEX %s;', index_name), ' ') FROM $view")
    costs "$drops" > "$dir/after"
    worse=$(paste "$dir/before" "$dir/after" | awk '$2 > $1 * 1.01 { n++ } END { print n + 0 }')
    echo "$view: $(q -At -c "SELECT count(*) FROM $view") rows," \
         "$(q -At -c "SELECT pg_size_pretty(sum(size_bytes)) FROM $view") to drop;" \
         "statements planned more than 1 % costlier once every row is followed: $worse of 22"
}
report perfopt.index_drop_candidates
report drop_candidates_1_0

echo "time of a read of each view, $PAIRS interleaved pairs ..."
q -At -c "
CREATE TEMP TABLE t (view text, ms float8);
DO \$\$
DECLARE
    started timestamptz;
    n bigint;
BEGIN
    FOR i IN 1..$PAIRS LOOP
        started := clock_timestamp();
        SELECT count(*) INTO n FROM perfopt.index_drop_candidates;
        INSERT INTO t VALUES ('1.1.0 set', 1000 * extract(epoch FROM clock_timestamp() - started));
        started := clock_timestamp();
        SELECT count(*) INTO n FROM drop_candidates_1_0;
        INSERT INTO t VALUES ('1.0.0 per row', 1000 * extract(epoch FROM clock_timestamp() - started));
    END LOOP;
END \$\$;
SELECT view || ': median ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ms'
  FROM t GROUP BY view ORDER BY view;
SELECT 'ratio 1.1.0 / 1.0.0: ' || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE view = '1.1.0 set')
       / percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE view = '1.0.0 per row'))::numeric, 1) FROM t;"
