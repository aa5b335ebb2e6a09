#!/usr/bin/env bash
# table_health reads pg_attribute and pg_statistic for the tables that hold
# rows through each catalog's index, a look-up per table, or in one pass over
# its heap, whichever the rule of src/common/catalog.c says costs less: about
# 7 rows fetched for a look-up's descent plus the rows it fetches, against 14
# for each page of the pass.  This benchmark checks the rule against both
# ways forced.
#
#   bash test/bench/catalog_reads.sh [TABLES] [ROUNDS] [SESSIONS]
#
# For each column count of COLUMN_SETS (default "3 20 10": the rule was
# fitted on tables of 3 and of 20 columns; 10 is held out), it builds a
# database of TABLES (default 10000) tables of that many columns (as
# scale.sh's COLUMNS makes them), then, for each count of HOLDING (default
# "10000 6000 3000 1000"), leaves a row in that many of them (the others
# emptied and vacuumed) and times table_health(false, NULL, false) in fresh
# sessions under three builds of this tree: the rule, the look-ups always
# and the pass always (PERFOPT_CATALOG_READS); the server restarted with
# each in turn, ROUNDS (default 3) rounds of SESSIONS (default 5) sessions.
# It prints what the rule chose for each catalog, each build's median (ms,
# the client's wall time) and the rule's time over the faster forced one's.
# Run as root; it starts and removes its own cluster.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

TABLES=${1:-10000}
ROUNDS=${2:-3}
SESSIONS=${3:-5}
PORT=${PORT:-5451}
COLUMN_SETS=${COLUMN_SETS:-"3 20 10"}
HOLDING=${HOLDING:-"10000 6000 3000 1000"}
# the rule's constants, as in src/common/catalog.c, to print what it chose
LOOKUP_DESCENT_ROWS=7
PASS_PAGE_ROWS=14

for n in $TABLES $ROUNDS $SESSIONS $COLUMN_SETS $HOLDING; do
    [[ $n =~ ^[0-9]+$ ]] || die "the arguments, COLUMN_SETS and HOLDING are numbers, not $n"
done
for c in $COLUMN_SETS; do
    [ "$c" -ge 3 ] && [ "$c" -le 1000 ] || die "a column count is 3 to 1000, not $c"
done

require_root
install_packages
build_and_install "$top"

# the forced builds: a copy of this tree built with PERFOPT_CATALOG_READS
stage=${PERFOPT_STAGE:-/tmp/perfopt-stage}
declare -A build_bin=([rule]=$PG_BIN)
for way in lookups:1 pass:2; do
    name=${way%%:*}
    src=$(mktemp -d /tmp/perfopt-catalog-reads-src.XXXXXX)
    tar -C "$top" --exclude=./.git -cf - . | tar -C "$src" -xf -
    make -C "$src" -s clean >/dev/null
    (PERFOPT_STAGE=$stage-$name; PG_BIN=$stage-$name/usr/lib/postgresql/15/bin
     COPT="-DPERFOPT_CATALOG_READS=${way##*:}" build_and_install "$src")
    rm -rf "$src"
    build_bin[$name]=$stage-$name/usr/lib/postgresql/15/bin
done
builds=(rule lookups pass)

dir=$(postgres_tempdir catalog-reads)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "max_locks_per_transaction = $(( TABLES / 10 > 1024 ? TABLES / 10 : 1024 ))
shared_buffers = 256MB
autovacuum = off
perfopt.database = 'postgres'"
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# wall ms of a statement in a fresh session of database $1
timed() {
    as_postgres psql -h "$dir" -p "$PORT" -d "$1" -X -q -o /dev/null <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
\\timing on
$2;
SQL
}

printf '%-8s %-8s %-10s %-10s %9s %11s %8s %12s\n' columns holding attribute statistic rule_ms lookups_ms pass_ms rule/faster
for columns in $COLUMN_SETS; do
    db=c$columns
    q() { as_postgres psql -h "$dir" -p "$PORT" -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"; }
    as_postgres createdb -h "$dir" -p "$PORT" "$db"
    q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE"
    scale_tables "$TABLES" "$columns" row | q
    q -c "ANALYZE"
    holding_now=$TABLES
    for holding in $(tr ' ' '\n' <<< "$HOLDING" | sort -rn); do
        [ "$holding" -le "$TABLES" ] || continue
        # empty the tables past the first $holding (vacuum truncates them to
        # no page): table_health reads the columns of the others only
        if [ "$holding" -lt "$holding_now" ]; then
            q -At <<SQL >/dev/null
SELECT format('DELETE FROM public.t%s', i) FROM generate_series($((holding + 1)), $holding_now) i
\gexec
SELECT format('VACUUM public.t%s', i) FROM generate_series($((holding + 1)), $holding_now) i
\gexec
SQL
            holding_now=$holding
        fi
        q -c "SELECT pg_stat_force_next_flush()" >/dev/null
        # what the rule chooses for each catalog, from what it is given: the
        # tables, the rows their look-ups would fetch, the catalog's pages
        read -r attribute statistic <<< "$(q -At -F ' ' <<SQL
SELECT CASE WHEN $LOOKUP_DESCENT_ROWS * count(*) + sum(c.relnatts + 6) <
                 $PASS_PAGE_ROWS * pg_relation_size('pg_attribute') / 8192 THEN 'look-ups' ELSE 'pass' END,
       CASE WHEN $LOOKUP_DESCENT_ROWS * count(*) + sum(c.relnatts) <
                 $PASS_PAGE_ROWS * pg_relation_size('pg_statistic') / 8192 THEN 'look-ups' ELSE 'pass' END
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relpages > 0
SQL
)"
        rm -f "$dir"/t_*
        for _ in $(seq "$ROUNDS"); do
            for b in "${builds[@]}"; do
                as_postgres pg_ctl -D "$dir/data" -m fast -w stop >/dev/null
                PG_BIN=${build_bin[$b]} as_postgres pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
                    || { cat "$dir/server.log" >&2; die "the server did not start with the $b build"; }
                q -c "SELECT perfopt.sample_metrics()" >/dev/null
                for _ in $(seq "$SESSIONS"); do
                    timed "$db" "SELECT count(*) FROM perfopt.table_health(false, NULL, false)" >> "$dir/t_$b"
                done
            done
        done
        declare -A ms=()
        for b in "${builds[@]}"; do ms[$b]=$(median < "$dir/t_$b"); done
        printf '%-8s %-8s %-10s %-10s %9.1f %11.1f %8.1f %12.2f\n' "$columns" "$holding" "$attribute" "$statistic" \
            "${ms[rule]}" "${ms[lookups]}" "${ms[pass]}" \
            "$(awk -v r="${ms[rule]}" -v l="${ms[lookups]}" -v p="${ms[pass]}" 'BEGIN { print r / (l < p ? l : p) }')"
    done
    as_postgres dropdb -h "$dir" -p "$PORT" "$db"
done
