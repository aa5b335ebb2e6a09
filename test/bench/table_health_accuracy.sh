#!/usr/bin/env bash
# Benchmark of table_health's bloat figures against pgstattuple (contrib,
# the ground truth: it reads every page) in the same run, and of its speed.
#
#   bash test/bench/table_health_accuracy.sh [BIG_TABLE_MB] [TABLES]
#
# BIG_TABLE_MB (default 1024) sizes the table on which exact mode and
# pgstattuple are timed; TABLES (default 10000) is how many tables the fast
# mode is timed on.  Run as root; it starts and removes its own cluster.
#
# Tables of four shapes (narrow, wide, TOASTed text, many indexes) are
# bloated to known levels by deletes, updates and aborted inserts, and
# est_bloat_pct is read in both modes, before and after VACUUM, against
# pgstattuple's dead_tuple_percent + free_percent.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"

BIG_MB=${1:-1024}
TABLES=${2:-10000}
PORT=${PORT:-5437}

require_root
install_packages
build_and_install "$top"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "autovacuum = off" "shared_buffers = '256MB'" "max_locks_per_transaction = 256"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" -c "CREATE EXTENSION pgstattuple"

echo "creating the tables of four shapes ..."
q <<'SQL'
CREATE TABLE results (shape text, bloated_by text, state text, pgstattuple float8,
                      fast float8, exact float8, exact_error float8);
CREATE FUNCTION make_table(name text, shape text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE shape
    WHEN 'narrow' THEN
        EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, n int)', name);
        EXECUTE format('INSERT INTO %I SELECT i, i FROM generate_series(1, 400000) i', name);
    WHEN 'wide' THEN
        EXECUTE format('CREATE TABLE %I (id bigint PRIMARY KEY, a int, b int, c bigint, d numeric(12,2),
                        e text, f text, g timestamptz, h date, i boolean, j smallint, k float8,
                        l uuid, m text, n int)', name);
        EXECUTE format('INSERT INTO %I SELECT i, i %% 100, i %% 7, i * 11, i / 3.0, ''item '' || i,
                        CASE WHEN i %% 4 = 0 THEN NULL ELSE repeat(''w'', i %% 40) END,
                        now() - i * interval ''1 minute'', current_date - i %% 900, i %% 2 = 0,
                        (i %% 1000)::smallint, i * 1.5, md5(i::text)::uuid,
                        CASE WHEN i %% 3 = 0 THEN NULL ELSE md5(i::text) END, i
                        FROM generate_series(1, 150000) i', name);
    WHEN 'toasted' THEN
        -- documents too big for a page and too random to compress: most of
        -- their bytes go to the TOAST table, the heap keeps 18-byte pointers
        EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, title text, body text)', name);
        EXECUTE format('INSERT INTO %I SELECT i, ''doc '' || i,
                        (SELECT string_agg(md5(i::text || j::text), '''') FROM generate_series(1, 100) j)
                        FROM generate_series(1, 20000) i', name);
    WHEN 'indexed' THEN
        EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, a int, b int, c text, d timestamptz, e int)', name);
        EXECUTE format('INSERT INTO %I SELECT i, i %% 1000, i %% 37, ''k'' || (i %% 5000),
                        now() - i * interval ''1 second'', i %% 11 FROM generate_series(1, 200000) i', name);
        FOR col IN 1..5 LOOP
            EXECUTE format('CREATE INDEX ON %I (%s)', name, (ARRAY['a','b','c','d','e'])[col]);
        END LOOP;
        EXECUTE format('CREATE INDEX ON %I (a, b)', name);
        EXECUTE format('CREATE INDEX ON %I (c, d)', name);
    END CASE;
END $$;

CREATE FUNCTION bloat(name text, how text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE how
    WHEN 'fresh' THEN NULL;
    WHEN 'deletes 30%' THEN EXECUTE format('DELETE FROM %I WHERE id %% 10 < 3', name);
    WHEN 'deletes 70%' THEN EXECUTE format('DELETE FROM %I WHERE id %% 10 < 7', name);
    WHEN 'updates' THEN EXECUTE format('UPDATE %I SET id = id', name);
    END CASE;
END $$;
SQL

for shape in narrow wide toasted indexed; do
    for how in "fresh" "deletes 30%" "deletes 70%" "updates" "aborted inserts"; do
        t="${shape}_$(echo "$how" | tr -c 'a-z0-9\n' '_')"
        if [ "$how" = "aborted inserts" ]; then
            # the rows of a same-shaped table inserted and rolled back: all dead
            q -c "SELECT make_table('${t}_src', '$shape')" -c "SELECT make_table('$t', '$shape')" >/dev/null
            q -c "TRUNCATE $t" -c "VACUUM ANALYZE ${t}_src" >/dev/null
            q -c "BEGIN" -c "INSERT INTO $t SELECT * FROM ${t}_src" -c "ROLLBACK" >/dev/null
            q -c "ANALYZE $t" >/dev/null
        else
            # each step in a session of its own: a session's statistics
            # reach shared memory when it ends
            q -c "SELECT make_table('$t', '$shape')" >/dev/null
            q -c "VACUUM ANALYZE $t" >/dev/null
            q -c "SELECT bloat('$t', '$how')" >/dev/null
        fi
        for state in "before VACUUM" "after VACUUM"; do
            [ "$state" = "after VACUUM" ] && q -c "VACUUM $t"
            q -c "INSERT INTO results
                  SELECT '$shape', '$how', '$state', p.dead_tuple_percent + p.free_percent,
                         (SELECT est_bloat_pct FROM perfopt.table_health(false, '$t')),
                         e.est_bloat_pct, e.bloat_error_pct
                    FROM pgstattuple('$t') p, perfopt.table_health(true, '$t') e"
        done
    done
done

echo "building a table of about $BIG_MB MB ..."
q -c "CREATE TABLE big (id bigint PRIMARY KEY, a int, b text, c timestamptz)" \
  -c "INSERT INTO big SELECT i, i % 1000, md5(i::text) || md5((i + 1)::text), now()
        FROM generate_series(1, ($BIG_MB * 1024 * 1024 / 130)::bigint) i"
q -c "DELETE FROM big WHERE id % 10 < 4"
q -c "VACUUM ANALYZE big"
q -c "CREATE TABLE timing (method text, ms float8, bloat float8, error float8)"
for method in pgstattuple exact fast; do
    case $method in
    pgstattuple) sql="SELECT dead_tuple_percent + free_percent, 0 FROM pgstattuple('big')" ;;
    exact) sql="SELECT est_bloat_pct, bloat_error_pct FROM perfopt.table_health(true, 'big')" ;;
    fast) sql="SELECT est_bloat_pct, 0 FROM perfopt.table_health(false, 'big')" ;;
    esac
    q -c "DO \$\$
          DECLARE t0 timestamptz := clock_timestamp(); v float8; e float8;
          BEGIN
              EXECUTE \$q\$$sql\$q\$ INTO v, e;
              INSERT INTO timing VALUES ('$method', extract(epoch FROM clock_timestamp() - t0) * 1000, v, e);
          END \$\$"
done

echo "creating $TABLES small tables ..."
q -c "DO \$\$ BEGIN FOR i IN 1..$TABLES LOOP
          EXECUTE format('CREATE TABLE many_%s (id int PRIMARY KEY, v text)', i);
          EXECUTE format('INSERT INTO many_%s VALUES (1, ''x''), (2, ''y'')', i);
          IF i % 500 = 0 THEN COMMIT; END IF;
      END LOOP; END \$\$" 2>/dev/null || true
q -c "ANALYZE"
q -c "DO \$\$
      DECLARE t0 timestamptz := clock_timestamp(); n int;
      BEGIN
          SELECT count(*) INTO n FROM perfopt.table_health(false);
          INSERT INTO timing VALUES ('fast, all ' || n || ' tables', extract(epoch FROM clock_timestamp() - t0) * 1000, NULL, NULL);
      END \$\$"

echo
echo "== est_bloat_pct against pgstattuple's dead_tuple_percent + free_percent"
q -P footer=off -c "
SELECT shape, bloated_by, state, round(pgstattuple::numeric, 1) AS pgstattuple,
       round(fast::numeric, 1) AS fast, round((fast - pgstattuple)::numeric, 1) AS fast_diff,
       round(exact::numeric, 1) AS exact, round((exact - pgstattuple)::numeric, 2) AS exact_diff,
       round(exact_error::numeric, 2) AS exact_95pct
  FROM results ORDER BY shape, bloated_by, state DESC"
q -P footer=off -c "
SELECT round(max(abs(fast - pgstattuple))::numeric, 1) AS fast_worst_diff,
       round(avg(abs(fast - pgstattuple))::numeric, 1) AS fast_mean_diff,
       min(fast) >= 0 AS fast_never_negative,
       round(max(abs(exact - pgstattuple))::numeric, 2) AS exact_worst_diff,
       round(avg(abs(exact - pgstattuple))::numeric, 2) AS exact_mean_diff
  FROM results"
echo "== on a table of $(q -At -c "SELECT pg_size_pretty(pg_relation_size('big'))")"
q -P footer=off -c "
SELECT method, round(ms::numeric, 1) AS ms, round(bloat::numeric, 2) AS bloat_pct, round(error::numeric, 2) AS error_95pct,
       round((ms / (SELECT ms FROM timing WHERE method = 'pgstattuple'))::numeric, 3) AS time_vs_pgstattuple
  FROM timing ORDER BY ms DESC"
echo "targets: exact within 2 points of pgstattuple at a fraction of its time on a 1 GB table;"
echo "fast within 10 points and never negative; fast on 10,000 tables"
