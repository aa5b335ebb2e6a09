#!/usr/bin/env bash
# perfopt at 10,000 tables and 10,000 distinct statements: each call timed
# beside the catalog read it has to stay close to.
#
#   bash test/bench/scale.sh [TABLES] [STATEMENTS] [RUNS]
#
# Builds a database of TABLES (default 10000) tables, each with a primary
# key and an index of its own, 200 of them with 20,000 rows (some updated,
# some deleted from, some with a redundant or a duplicate index), and runs
# STATEMENTS (default 10000) distinct statements once each, so that
# pg_stat_statements holds them.  Then, RUNS times (default 5), it times
# each call in a fresh session right after the baseline in another fresh
# session, by the client's wall time and by the server process's CPU time,
# and prints the median of each and the median of the ratios:
#
#   baseline                         calls
#   SELECT count(*) FROM pg_stat_user_tables   table_health (with and without its
#                                    drop recommendations), index_drop_candidates,
#                                    health(), run_optimization_cycle(),
#                                    prometheus_metrics(), pool_recommendation(0.1)
#   SELECT count(*) FROM pg_stat_statements    slow_queries, recommend_indexes()
#   SELECT * FROM pg_stat_user_tables          table_health (the statistics view
#                                    printed whole, what a DBA reads without perfopt)
#
# and the number of series of the scrape, and where table_health's time goes
# (the calls it is made of, counted, not printed).  Every table's own index is
# unused there, so that every table has a drop candidate: then, after a
# lookup through each small table's index, the calls that read the drop
# candidates are timed again where only the big tables have one; last,
# held out, where every table holds a row and has statistics (most
# databases' tables hold rows; the benchmark's small tables are empty),
# also in sessions that ran each call once before; then after a statistics
# reset, where no table has been read since; last, with a table of
# PARTITIONS (default 3000) partitions read through it, beside the planning
# of that statement over every partition, which the safe set does once.
# A fresh session per call is what a psql user or a new connection pays:
# nothing is cached in the backend.  A pooled connection (a dashboard's, a
# BI tool's) has its catalog caches warm: the held-out phase is timed so too.
# COLUMNS (default 3) gives each table that many columns: those after the
# third rotate through int, text, timestamptz and numeric, each with a
# default, so that every row holds them (a schema other than the one the
# work was measured on: pg_attribute and pg_statistic grow with it).
# SETTINGS adds lines to the cluster's postgresql.conf (for instance
# SETTINGS='perfopt.table_state_max = 300000').
# BASELINE=<git revision> also times, on the held-out database, the calls
# that read every table under the build of that revision (git archive,
# built and installed into BASELINE_STAGE, default
# $PERFOPT_STAGE-baseline) and under this one, the server restarted with
# each in turn, RUNS rounds: each build's medians and the median of the
# rounds' ratios, this build over the baseline's, and whether the views
# give the same rows under both (an md5 of each one's sorted rows; of
# table_health's but xid_age_pct, which every transaction moves).  The
# revision must have
# the same install script (the same SQL objects) as this tree.
# Run as root; it starts and removes its own cluster (KEEP=1 leaves it running
# and prints how to reach it).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

TABLES=${1:-10000}
STATEMENTS=${2:-10000}
RUNS=${3:-5}
PORT=${PORT:-5447}
BIG_TABLES=200
BIG_ROWS=20000
COLUMNS=${COLUMNS:-3}
[[ $COLUMNS =~ ^[0-9]+$ && $COLUMNS -ge 3 && $COLUMNS -le 1000 ]] || { echo "COLUMNS must be 3 to 1000, not $COLUMNS" >&2; exit 1; }
. "$top/test/bench/bench_lib.sh"

require_root
install_packages
build_and_install "$top"
BASELINE=${BASELINE:-}
BASELINE_STAGE=${BASELINE_STAGE:-${PERFOPT_STAGE:-/tmp/perfopt-stage}-baseline}
if [ -n "$BASELINE" ]; then
    build_baseline "$top" "$BASELINE" "$BASELINE_STAGE"
fi

dir=$(postgres_tempdir scale)
if [ -z "${KEEP:-}" ]; then
    trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
fi
# the launcher's jobs run in another database, so that they do not run in
# the middle of a measurement; the benchmark samples the metrics itself.
# The tables are made in one transaction, which locks about five relations
# for each (the table, its TOAST table and index, its two indexes): the lock
# table holds max_locks_per_transaction times the connections
start_cluster "$dir" "$PORT" "max_locks_per_transaction = $(( TABLES / 10 > 1024 ? TABLES / 10 : 1024 ))
pg_stat_statements.max = $((STATEMENTS + 2000))
shared_buffers = 256MB
autovacuum = off
perfopt.database = 'postgres'
${SETTINGS:-}"
q() { as_postgres psql -h "$dir" -p "$PORT" -d scale -X -q -v ON_ERROR_STOP=1 "$@"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
as_postgres createdb -h "$dir" -p "$PORT" scale

started=$(date +%s)
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
# the tables, in one transaction: a key, a value, a text and an index on the
# value each (bench_lib.sh); the big ones get rows and a second index for
# the drop candidates to find
scale_tables "$TABLES" "$COLUMNS" | q
q <<SQL
DO \$\$
BEGIN
    FOR i IN 1..$BIG_TABLES LOOP
        EXECUTE format('INSERT INTO public.t%s SELECT g, g %% 100, md5(g::text) FROM generate_series(1, $BIG_ROWS) g', i);
        -- redundant (a prefix of another), duplicate, or unused
        EXECUTE CASE i % 4
            WHEN 0 THEN format('CREATE INDEX t%s_a_id ON public.t%s (a, id)', i, i)
            WHEN 1 THEN format('CREATE INDEX t%s_a2 ON public.t%s (a)', i, i)
            ELSE format('CREATE INDEX t%s_b ON public.t%s (b)', i, i) END;
    END LOOP;
END
\$\$;
SQL
# changes: a tenth of the big tables updated, another tenth deleted from
q <<SQL
DO \$\$
BEGIN
    FOR i IN 1..$BIG_TABLES LOOP
        IF i % 10 = 3 THEN
            EXECUTE format('UPDATE public.t%s SET b = b || ''x'' WHERE id %% 3 = 0', i);
        ELSIF i % 10 = 7 THEN
            EXECUTE format('DELETE FROM public.t%s WHERE id %% 2 = 0', i);
        END IF;
    END LOOP;
END
\$\$;
SQL
q -c "ANALYZE"
echo "built $TABLES tables of $COLUMNS columns in $(( $(date +%s) - started )) s"

# the statements: one lookup per table, and scans of the big ones, each text
# distinct, sent one by one as top-level statements
started=$(date +%s)
q -c "SELECT pg_stat_statements_reset()" >/dev/null
q -At <<SQL >/dev/null
SELECT CASE WHEN i <= $TABLES
            THEN format('SELECT a FROM public.t%s WHERE id = %s', i, i)
            ELSE format('SELECT count(*) FROM public.t%s WHERE a = %s AND b <> ''%s''', i % $BIG_TABLES + 1, i % 100, i) END
  FROM generate_series(1, $STATEMENTS) i
\gexec
SQL
for _ in 1 2; do q -c "SELECT perfopt.sample_metrics()" >/dev/null; done
# one more sample: the sizes it measured again (table_state.c), and its time
q -c "SET client_min_messages = debug1" -c '\timing on' -c "SELECT perfopt.sample_metrics()" 2>&1 >/dev/null |
    sed -n 's/.*perfopt table state: \(.*\)/sampler state: \1/p'
# five more in one session, as the worker takes them: their median
echo "a sample took $(q -c '\timing on' -c "SELECT perfopt.sample_metrics()" -c "SELECT perfopt.sample_metrics()" \
    -c "SELECT perfopt.sample_metrics()" -c "SELECT perfopt.sample_metrics()" -c "SELECT perfopt.sample_metrics()" |
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | median) ms (median of 5)"
echo "ran $STATEMENTS statements in $(( $(date +%s) - started )) s; pg_stat_statements holds $(q -At -c "SELECT count(*) FROM pg_stat_statements")"

if [ -n "${KEEP:-}" ]; then
    echo "cluster left running: psql -h $dir -p $PORT -d scale (stop: pg_ctl -D $dir/data stop)"
fi

# milliseconds of one statement in a fresh session (its result discarded):
# the client's wall time, then the CPU time of the server process that ran
# it (from /proc/PID/schedstat, in nanoseconds: other helpers share the
# machine, and CPU time moves less with their load than wall time)
timed() {
    # WARM: the session runs the statement once before it is timed
    local warm=""
    if [ -n "${WARM:-}" ]; then
        warm=$'\\o /dev/null\n'"$1;"
    fi
    q -At <<SQL | awk '/^cpu / { cpu[++n] = $2 } /^Time: / { wall = $2 } END { printf "%s %.1f\n", wall, (cpu[2] - cpu[1]) / 1e6 }'
SELECT pg_backend_pid() AS pid \gset
\setenv BACKEND_PID :pid
$warm
\! awk '{ print "cpu", \$1 }' /proc/\$BACKEND_PID/schedstat
\o /dev/null
\timing on
$1;
\timing off
\o
\! awk '{ print "cpu", \$1 }' /proc/\$BACKEND_PID/schedstat
SQL
}


tables_base="SELECT count(*) FROM pg_stat_user_tables"
statements_base="SELECT count(*) FROM pg_stat_statements"
# printing the tables' names alone (timed with the calls, and again in a
# pooled connection below)
tables_names="(regclass of the tables)|SELECT relid::regclass FROM pg_stat_user_tables|$tables_base"
# table_health beside the statistics view printed whole, as a DBA reads it
# without perfopt: each prints a row of each table
tables_full="table_health, vs SELECT *|SELECT * FROM perfopt.table_health|SELECT * FROM pg_stat_user_tables"
calls=(
    "table_health|SELECT * FROM perfopt.table_health|$tables_base"
    "$tables_full"
    # the same without its recommendations to drop an index, which evaluate
    # index_drop_candidates (health() and the cycle call it so)
    "table_health(f, NULL, f)|SELECT * FROM perfopt.table_health(false, NULL, false)|$tables_base"
    "index_drop_candidates|SELECT * FROM perfopt.index_drop_candidates|$tables_base"
    "health()|SELECT * FROM perfopt.health()|$tables_base"
    "run_optimization_cycle()|SELECT perfopt.run_optimization_cycle()|$tables_base"
    "prometheus_metrics()|SELECT perfopt.prometheus_metrics()|$tables_base"
    "pool_recommendation(0.1)|SELECT * FROM perfopt.pool_recommendation(0.1)|$tables_base"
    "slow_queries|SELECT * FROM perfopt.slow_queries|$statements_base"
    "recommend_indexes()|SELECT * FROM perfopt.recommend_indexes()|$statements_base"
    # what printing the views' regclass columns alone costs in a fresh
    # session (a catalog look-up of each name and of its visibility): the
    # tables' names, and two names for each index of the kind the drop
    # candidates list
    "$tables_names"
    "(regclass of the indexes)|SELECT i.indexrelid::regclass, i.indrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisunique|$tables_base"
)

# where table_health's time goes, in parts: its own pass without the
# drop recommendations, counted (not printed: the names' printing is timed
# above); the drop candidates, counted; and their first step, the tables
# that can have one (a pass over pg_index and over the shared statistics).
# The safe set's read of the workload is slow_queries' baseline, a read of
# pg_stat_statements.
parts=(
    "(counted) (f, NULL, f)|SELECT count(*) FROM perfopt.table_health(false, NULL, false)|$tables_base"
    "(counted) drop candidates|SELECT count(*) FROM perfopt.index_drop_candidates|$tables_base"
    "(drop suspects)|SELECT count(*) FROM perfopt.index_drop_suspects()|$tables_base"
)

# each call of the list given, RUNS times, beside its baseline
time_calls() {
    printf '%-26s %9s %9s %7s %9s %9s %7s  %s\n' call ms base_ms ratio cpu_ms base_cpu cpu_rat baseline
    for c in "$@"; do
        IFS='|' read -r name call base <<< "$c"
        : > "$dir/call" ; : > "$dir/base"; : > "$dir/ratio"
        : > "$dir/call_cpu" ; : > "$dir/base_cpu"; : > "$dir/ratio_cpu"
        for _ in $(seq "$RUNS"); do
            read -r b bc <<< "$(timed "$base")"
            read -r t tc <<< "$(timed "$call")"
            echo "$b" >> "$dir/base"
            echo "$t" >> "$dir/call"
            echo "$bc" >> "$dir/base_cpu"
            echo "$tc" >> "$dir/call_cpu"
            awk -v t="$t" -v b="$b" 'BEGIN { print t / b }' >> "$dir/ratio"
            awk -v t="$tc" -v b="$bc" 'BEGIN { print t / b }' >> "$dir/ratio_cpu"
        done
        printf '%-26s %9.1f %9.1f %7.2f %9.1f %9.1f %7.2f  %s\n' "$name" "$(median < "$dir/call")" "$(median < "$dir/base")" \
            "$(median < "$dir/ratio")" "$(median < "$dir/call_cpu")" "$(median < "$dir/base_cpu")" \
            "$(median < "$dir/ratio_cpu")" "$base"
    done
}

candidates() { q -At -c "SELECT sum(n) || ' (' || string_agg(reason_code || ' ' || n, ', ') || ')' FROM (SELECT reason_code, count(*) AS n FROM perfopt.index_drop_candidates GROUP BY 1 ORDER BY 1) r"; }

echo "== $TABLES tables, $STATEMENTS statements: median of $RUNS runs, each in a fresh session after its baseline"
echo "   (ms: the client's wall time; cpu: the server process's CPU time)"
echo "   drop candidates: $(candidates): every table's own index is unused"
time_calls "${calls[@]}" "${parts[@]}"
series=$(q -At -c "SELECT count(*) FROM regexp_split_to_table(perfopt.prometheus_metrics(), E'\n') l
                    WHERE l <> '' AND l NOT LIKE '#%'")
echo "prometheus_metrics() series: $series"

# the calls that read every table (and the drop candidates), timed again
# below as the database changes
catalog_calls=(
    "table_health|SELECT * FROM perfopt.table_health|$tables_base"
    "$tables_full"
    "table_health(f, NULL, f)|SELECT * FROM perfopt.table_health(false, NULL, false)|$tables_base"
    "index_drop_candidates|SELECT * FROM perfopt.index_drop_candidates|$tables_base"
    "health()|SELECT * FROM perfopt.health()|$tables_base"
    "run_optimization_cycle()|SELECT perfopt.run_optimization_cycle()|$tables_base"
)

# a phase after the database changed: a sample, as the metrics worker takes
# one after changes (whose sizes it measures again), then the calls above
# and any given after the phase's title
phase() {
    local title=$1
    shift
    q -c "SELECT perfopt.sample_metrics()" >/dev/null
    echo "== $title"
    echo "   drop candidates: $(candidates); drop suspects: $(q -At -c 'SELECT count(*) FROM perfopt.index_drop_suspects()')"
    time_calls "${catalog_calls[@]}" "${parts[@]}" "$@"
}

# The same database where most tables have nothing to drop: a lookup through
# each small table's own index (not recorded by pg_stat_statements, which
# keeps the statements above), so that only the big tables' indexes remain
# candidates.  What the drop candidates read follows the tables that have
# candidates (perfopt.index_drop_suspects), not the catalog.
q -At <<SQL >/dev/null
SET pg_stat_statements.track = none;
SET enable_seqscan = off;
SELECT format('SELECT a FROM public.t%s WHERE a = %s', i, i % 100)
  FROM generate_series($((BIG_TABLES + 1)), $TABLES) i
\gexec
SQL
phase "the same after a lookup through each of the $((TABLES - BIG_TABLES)) small tables' own index"

# Held out: the same database where every table holds rows, as in most
# databases (above, 9,800 of the tables are empty, and table_health reads
# the columns only of the tables that hold something).  One row in each
# small table, then ANALYZE, so that pg_statistic has every table's columns,
# and a sample, as the metrics worker's, after the changes.
q -At <<SQL >/dev/null
SET pg_stat_statements.track = none;
SELECT format('INSERT INTO public.t%s VALUES (1, 1, ''x'')', i)
  FROM generate_series($((BIG_TABLES + 1)), $TABLES) i
\gexec
SQL
q -c "ANALYZE" -c "SELECT pg_stat_force_next_flush()" >/dev/null
phase "held out: the same with a row in every table, analyzed"
# The same calls in a session that has run each (and its baseline) once
# before, as a pooled connection (a dashboard's, a BI tool's) runs them: the
# catalog caches hold the names and the catalogs' pages are mapped.
echo "== held out, each call in a session that ran it once before (a pooled connection's)"
WARM=1 time_calls "${catalog_calls[@]}" "$tables_names" "${parts[@]}"
# what a session keeps between calls: each table's columns (table_health.c)
kept=$(q -At -c "SELECT count(*) FROM perfopt.table_health(false, NULL, false)" \
            -c "SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'perfopt table_health kept columns'" | tail -n 1)
echo "   a session's kept columns after a call: ${kept:-0} bytes for $(q -At -c "SELECT count(*) FROM pg_stat_user_tables") tables"

# With BASELINE: the same database under the baseline's build and this one,
# the server restarted with each in turn (a restart empties the sizes kept
# in shared memory: a sample after it, as the metrics worker takes); each
# call in a fresh session and in one that ran it before
if [ -n "$BASELINE" ]; then
    declare -A build_bin=([baseline]=$BASELINE_STAGE/usr/lib/postgresql/15/bin [this]=$PG_BIN)
    ab_calls=(
        "table_health|SELECT * FROM perfopt.table_health"
        "(counted) (f, NULL, f)|SELECT count(*) FROM perfopt.table_health(false, NULL, false)"
        "(counted) drop candidates|SELECT count(*) FROM perfopt.index_drop_candidates"
        "(drop suspects)|SELECT count(*) FROM perfopt.index_drop_suspects()"
        "health()|SELECT * FROM perfopt.health()"
    )
    # the rows, compared by an md5 of each view's sorted rows under each
    # build (table_health's but xid_age_pct, which every transaction moves)
    rows_sql="SELECT md5(string_agg(r, E'\\n' ORDER BY r)) FROM (SELECT ROW(table_name, health_score,
                  est_bloat_pct, dead_tuple_pct, seq_scan_pct, cache_hit_pct, hot_update_pct, last_vacuum,
                  last_analyze, issues, recommendations, index_bloat_pct, vacuum_due, analyze_due, size_bytes,
                  measured, bloat_error_pct)::text FROM perfopt.table_health) s(r)
              UNION ALL SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM perfopt.index_drop_candidates t
              UNION ALL SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM perfopt.index_drop_suspect_indexes() t
              UNION ALL SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM perfopt.index_drop_suspects() t"
    rm -f "$dir"/ab_*
    for _ in $(seq "$RUNS"); do
        for b in baseline this; do
            as_postgres pg_ctl -D "$dir/data" -m fast -w stop >/dev/null
            PG_BIN=${build_bin[$b]} as_postgres pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
                || { cat "$dir/server.log" >&2; die "the server did not start with the $b build"; }
            q -c "SELECT perfopt.sample_metrics()" >/dev/null
            [ -f "$dir/ab_rows_$b" ] || q -At -c "$rows_sql" > "$dir/ab_rows_$b"
            for i in "${!ab_calls[@]}"; do
                IFS='|' read -r _ call <<< "${ab_calls[$i]}"
                read -r t _ <<< "$(timed "$call")"
                echo "$t" >> "$dir/ab_${b}_fresh_$i"
                read -r t _ <<< "$(WARM=1 timed "$call")"
                echo "$t" >> "$dir/ab_${b}_pooled_$i"
            done
        done
    done
    echo "== held out, the baseline's build ($(git -C "$top" log -1 --format=%h "$BASELINE")) and this one, restarted with each in turn, $RUNS rounds"
    if cmp -s "$dir/ab_rows_baseline" "$dir/ab_rows_this"; then
        echo "   rows: the same under both builds (table_health but xid_age_pct, index_drop_candidates,"
        echo "   index_drop_suspect_indexes(), index_drop_suspects(): md5 of the sorted rows)"
    else
        echo "   rows: NOT the same; md5 of table_health, index_drop_candidates, the suspects' indexes, the suspects:"
        paste "$dir/ab_rows_baseline" "$dir/ab_rows_this" | sed 's/^/   baseline, this: /'
    fi
    printf '%-26s %-7s %12s %9s %8s\n' call session baseline_ms this_ms ratio
    for i in "${!ab_calls[@]}"; do
        IFS='|' read -r name _ <<< "${ab_calls[$i]}"
        for kind in fresh pooled; do
            paste "$dir/ab_this_${kind}_$i" "$dir/ab_baseline_${kind}_$i" | awk '{ print $1 / $2 }' > "$dir/ab_ratio"
            printf '%-26s %-7s %12.1f %9.1f %8.3f\n' "$name" "$kind" "$(median < "$dir/ab_baseline_${kind}_$i")" \
                "$(median < "$dir/ab_this_${kind}_$i")" "$(median < "$dir/ab_ratio")"
        done
    done
    # back to this build for the phases below
    as_postgres pg_ctl -D "$dir/data" -m fast -w stop >/dev/null
    as_postgres pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null || die "the server did not start"
fi

# Last, the same database after a statistics reset (pg_stat_reset(), or a
# crash, which discards the statistics): no table has been read since, so
# no index is "unused" yet, and the drop candidates are only the duplicates
# and redundant indexes; their work should follow those tables, not every
# table whose index was never scanned.  A sample after it, as the worker's.
q -c "SELECT pg_stat_reset()" -c "SELECT pg_stat_force_next_flush()" >/dev/null
phase "after a statistics reset: no table read since"

# Then a partitioned table: PARTITIONS (default 3000; 0 skips this) daily
# partitions of one table with an index, read once through the table (a
# statement pg_stat_statements keeps, so the safe set plans it over every
# partition).  The partitioned index is an "unused" candidate, and its
# scans, its size and its table's reads are sums over the partitions.
PARTITIONS=${PARTITIONS:-3000}
if [ "$PARTITIONS" -gt 0 ]; then
    q -At <<SQL >/dev/null
SET pg_stat_statements.track = none;
CREATE TABLE public.ev (id bigint, day int, kind int, payload text) PARTITION BY RANGE (day);
SELECT format('CREATE TABLE public.ev_%s PARTITION OF public.ev FOR VALUES FROM (%s) TO (%s)', d, d, d + 1)
  FROM generate_series(0, $((PARTITIONS - 1))) d
\gexec
CREATE INDEX ev_kind ON public.ev (kind);
INSERT INTO public.ev SELECT g, g % $PARTITIONS, g % 7, 'x' FROM generate_series(1, $((10 * PARTITIONS))) g;
ANALYZE public.ev;
SQL
    q -c "SELECT count(*) FROM public.ev" -c "SELECT pg_stat_force_next_flush()" >/dev/null
    # and what the safe set cannot do without: planning that statement once
    # over every partition, as EXPLAIN does (a fresh session opens each
    # partition and each of its indexes)
    phase "with a table of $PARTITIONS partitions, read once through it" \
        "(planning its statement)|EXPLAIN SELECT count(*) FROM public.ev|$tables_base"
fi
