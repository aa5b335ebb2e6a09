#!/usr/bin/env bash
# Benchmark of index advice that sees the real parameters (issue 17): an
# insurance application whose most valuable indexes hide behind its
# parameters, measured with five index sets in one run.
#
#   bash test/bench/index_advisor_params.sh [SCALE] [ROUNDS] [APP_TX] [REPORT_TX]
#
# SCALE (default 1: 400,000 leads, 600,000 quotes; 0.1 for a quick check)
# sizes the data of index_advisor_params_schema.sql.  ROUNDS (default 5) is
# the number of interleaved rounds; in each, every set is built, the
# workload is run once and timed, and the set is dropped.  The workload is
# APP_TX (default 20) turns of the quoting application
# (index_advisor_params_app.pgbench, 10 statements, extended protocol:
# pgbench -M prepared) then REPORT_TX (default 5) turns of the back office
# (index_advisor_params_reports.pgbench, 6 statements, simple protocol),
# one client, the same random seed for every set of a round, so every set
# runs the same statements with the same parameters.  STATEMENTS (default
# 10000) is the number of distinct statements for the advisor's timing at
# the end; PORT (default 5438) the cluster's port.
#
# Fixed before any advisor was run or tuned (and committed so): the schema
# and its skews, the 16 statement shapes and their parameter distributions,
# the expert's set (index_advisor_params_expert.sql, with why each index)
# and the disk budget of a set: BUDGET_PCT = 75% of the heap size of the
# workload's four tables (88 MB at scale 1).
#
# The sets:
#   none       the primary keys only
#   perfopt    perfopt.recommend_indexes(budget) after the workload ran once
#              (with perfopt.param_sampling on when this build has it)
#   generic    the same with perfopt.param_sampling = off: each statement
#              planned generically, today's method; on a build without the
#              setting, perfopt's set IS the generic advisor's
#   qualstats  pg_qualstats_index_advisor() on what pg_qualstats sampled of
#              the same run (sample_rate 1); it has no budget
#   expert     index_advisor_params_expert.sql
#
# It prints each set with its disk, the measured time of the workload (sum
# over the two pgbench runs of latency average x transactions) per set as
# the median over the rounds with a 95% CI, the share of the no-index time
# each set cuts and each set's time over the expert's (medians of per-round
# ratios with CI), the median latency of each statement per set, and the
# advisor's run time with STATEMENTS distinct statements in
# pg_stat_statements.  Run as root; it starts and removes its own cluster
# (synchronous_commit off, so that a write's time is its work and not the
# disk's flush; no parallel query; autovacuum off: the script vacuums after
# each run, and removes the quotes the run inserted).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/test/bench/bench_lib.sh"

SCALE=${1:-1}
ROUNDS=${2:-5}
APP_TX=${3:-20}
REPORT_TX=${4:-5}
STATEMENTS=${STATEMENTS:-10000}
PORT=${PORT:-5438}
BUDGET_PCT=75
bench=$top/test/bench
CONFIGS=(none perfopt generic qualstats expert)

for f in index_advisor_params_schema.sql index_advisor_params_app.pgbench \
         index_advisor_params_reports.pgbench index_advisor_params_expert.sql; do
    [ -f "$bench/$f" ] || die "missing $bench/$f (the workload of this benchmark)"
done
[[ "$SCALE" =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a number (1 = 400,000 leads), not '$SCALE'"
for v in ROUNDS APP_TX REPORT_TX STATEMENTS PORT; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done

require_root
install_packages
PERFOPT_PACKAGES=postgresql-15-pg-qualstats install_packages
dpkg-query -W -f='${Status}' postgresql-15-pg-qualstats 2>/dev/null | grep -q "ok installed" \
    || die "package postgresql-15-pg-qualstats is missing (apt-get install postgresql-15-pg-qualstats)"
build_and_install "$top"
[ -f "$PG_BIN/../lib/pg_qualstats.so" ] || [ -f "$(dirname "$PG_BIN")/lib/pg_qualstats.so" ] \
    || die "pg_qualstats.so is not in $(dirname "$PG_BIN")/lib: install postgresql-15-pg-qualstats"

dir=$(postgres_tempdir bench)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
start_cluster "$dir" "$PORT" "jit = off" "max_parallel_workers_per_gather = 0" \
    "shared_preload_libraries = 'pg_stat_statements, perfopt, pg_qualstats'" \
    "pg_qualstats.sample_rate = 1" "shared_buffers = '512MB'" "autovacuum = off" \
    "synchronous_commit = off" "pg_stat_statements.max = $((STATEMENTS + 2000))"
q() { as_postgres psql -h "$dir" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
cp "$bench"/index_advisor_params_schema.sql "$bench"/index_advisor_params_app.pgbench \
   "$bench"/index_advisor_params_reports.pgbench "$dir/"
chown postgres: "$dir"/*

echo "loading the insurance schema at scale $SCALE ..."
started=$(date +%s)
q -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" -c "CREATE EXTENSION pg_qualstats"
q -v scale="$SCALE" -f "$dir/index_advisor_params_schema.sql" >/dev/null
# statistics from most rows, so that the plans are the same at every load
as_postgres env PGOPTIONS="-c default_statistics_target=1000" \
    psql -h "$dir" -p "$PORT" -d postgres -X -q -c "VACUUM ANALYZE"
read -r n_leads n_quotes n_agents n_carriers heap_bytes <<< "$(q -At -F ' ' -c "
    SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM quotes), (SELECT count(*) FROM agents),
           (SELECT count(*) FROM carriers),
           (SELECT sum(pg_relation_size(c)) FROM unnest('{leads,quotes,agents,carriers}'::regclass[]) c)")"
budget_mb=$(python3 -c "print(round($heap_bytes * $BUDGET_PCT / 100 / 1048576, 1))")
echo "loaded in $(( $(date +%s) - started )) s: $n_leads leads, $n_quotes quotes, $n_agents agents, $n_carriers carriers;"
echo "heap $((heap_bytes / 1048576)) MB; the budget of a set is $BUDGET_PCT% of it: $budget_mb MB"

D=(-D leads="$n_leads" -D quotes="$n_quotes" -D agents="$n_agents" -D carriers="$n_carriers"
   -D now=2026-01-01T00:00:00+00 -D unit=1day -D st_new=new -D st_callback=callback -D st_contacted=contacted)

q -c "CREATE TABLE sets (config text, index_def text, estimated bigint)" \
  -c "CREATE TABLE sizes (config text, index_def text, real bigint)" \
  -c "CREATE TABLE timings (config text, round int, ms float8, app_ms float8, report_ms float8)" \
  -c "CREATE TABLE latencies (config text, round int, part text, pos int, statement text, ms float8)" \
  -c "CREATE TABLE advisor_runs (advisor text, run jsonb)"

# Run the workload once with random seed $2; under config $1 (with round
# $3) record its time and each statement's latency, then undo its inserts
run_workload() {
    local config=$1 seed=$2 round=${3:-0} part mode tx script out lat total=0 pos
    declare -A part_ms
    for part in app reports; do
        if [ "$part" = app ]; then mode=prepared; tx=$APP_TX; else mode=simple; tx=$REPORT_TX; fi
        script="$dir/index_advisor_params_$part.pgbench"
        out=$(as_postgres pgbench -h "$dir" -p "$PORT" -n -M "$mode" -c 1 -t "$tx" -r --random-seed="$seed" \
                  "${D[@]}" -f "$script" postgres 2>&1) || { echo "$out" >&2; die "pgbench failed ($part, $config)"; }
        lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
        [ -n "$lat" ] || { echo "$out" >&2; die "no latency in pgbench's output ($part, $config)"; }
        part_ms[$part]=$(python3 -c "print($lat * $tx)")
        if [ "$config" != record ]; then
            pos=0
            echo "$out" | sed -n 's/^ *\([0-9.]*\) *[0-9]* *\(SELECT\|UPDATE\|INSERT\)\(.*\)$/\1\t\2\3/p' > "$dir/lat"
            while IFS=$'\t' read -r ms statement; do
                pos=$((pos + 1))
                echo "$config	$round	$part	$pos	$(echo "$statement" | cut -c1-70)	$ms"
            done < "$dir/lat" > "$dir/lat.tsv"
            chown postgres: "$dir/lat.tsv"
            q -c "\\copy latencies FROM '$dir/lat.tsv'"
        fi
    done
    if [ "$config" != record ]; then
        q -c "INSERT INTO timings VALUES ('$config', $round, ${part_ms[app]} + ${part_ms[reports]},
                                          ${part_ms[app]}, ${part_ms[reports]})"
    fi
    # out of pg_stat_statements' sight: not the application's statements
    q -c "SET pg_stat_statements.track = none" -c "DELETE FROM quotes WHERE id > $n_quotes" -c "VACUUM quotes, leads"
}

# Build the indexes of set $1 (not timed); ANALYZE a table that gets an
# expression index, so that the planner has its statistics
create_set() {
    local config=$1 round=$2 def
    while IFS= read -r def; do
        [ -n "$def" ] || continue
        # a definition PostgreSQL refuses is left out, and said so
        if ! q -c "$def" 2> "$dir/err" && [ "$round" = 1 ]; then
            echo "  $config: PostgreSQL refused $def: $(head -n 1 "$dir/err")"
        fi
    done < <(q -At -c "SELECT index_def FROM sets WHERE config = '$config'")
    q -At -c "SELECT DISTINCT 'ANALYZE ' || indrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relnamespace = 'public'::regnamespace AND i.indexprs IS NOT NULL" > "$dir/analyze.sql"
    chown postgres: "$dir/analyze.sql"
    q -f "$dir/analyze.sql"
    if [ "$round" = 1 ]; then
        q -c "INSERT INTO sizes SELECT '$config', pg_get_indexdef(i.indexrelid), pg_relation_size(i.indexrelid)
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relnamespace = 'public'::regnamespace
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
    fi
}

sampling=$(q -At -c "SELECT coalesce((SELECT setting FROM pg_settings WHERE name = 'perfopt.param_sampling'), 'absent')")
case $sampling in
    absent) echo "perfopt.param_sampling does not exist in this build: perfopt's set is the generic-plan advisor's" ;;
    *) # the recording run is short (each statement runs APP_TX or REPORT_TX
       # times): every execution is sampled, as pg_qualstats samples every
       # one (sample_rate 1), which a server running for days gets at the
       # default rate
       echo "perfopt.param_sampling = $sampling: on, and every execution sampled for the recording run"
       q -c "ALTER SYSTEM SET perfopt.param_sampling = on" -c "SELECT pg_reload_conf()" >/dev/null
       if [ -n "$(q -At -c "SELECT 1 FROM pg_settings WHERE name = 'perfopt.param_sample_every'")" ]; then
           q -c "ALTER SYSTEM SET perfopt.param_sample_every = 1" -c "SELECT pg_reload_conf()" >/dev/null
       fi
       sleep 1 ;;
esac

echo "recording: the workload once with the keys only (pg_stat_statements, pg_qualstats and perfopt's samples see it) ..."
q -c "SELECT pg_stat_statements_reset(), pg_qualstats_reset()" >/dev/null
run_workload record 1

if [ -n "$(q -At -c "SELECT 1 FROM pg_views WHERE schemaname = 'perfopt' AND viewname = 'statement_samples'")" ]; then
    echo "perfopt.statement_samples: $(q -At -c "
        SELECT count(DISTINCT s.queryid) || ' of ' || (SELECT count(*) FROM pg_stat_statements
                                                        WHERE query ~* '(leads|quotes)' AND query !~* 'pg_')
               || ' statements of the workload have samples, ' || count(*) || ' parameter sets'
          FROM perfopt.statement_samples s JOIN pg_stat_statements p USING (userid, dbid, queryid)
         WHERE p.query ~* '(leads|quotes)'")"
fi
echo "asking the advisors (budget $budget_mb MB) ..."
q -c "INSERT INTO sets SELECT 'perfopt', index_def, est_size_bytes FROM perfopt.recommend_indexes($budget_mb) ORDER BY rank" \
  -c "INSERT INTO advisor_runs SELECT 'perfopt', perfopt.last_advisor_run()"
if [ "$sampling" = absent ]; then
    q -c "INSERT INTO sets SELECT 'generic', index_def, estimated FROM sets WHERE config = 'perfopt'"
else
    # the generic-plan advisor: the same, with the samples out of sight
    if q -c "SET perfopt.param_sampling = off" -c "SELECT 1" >/dev/null 2>&1; then
        q -c "SET perfopt.param_sampling = off" \
          -c "INSERT INTO sets SELECT 'generic', index_def, est_size_bytes FROM perfopt.recommend_indexes($budget_mb) ORDER BY rank" \
          -c "INSERT INTO advisor_runs SELECT 'generic', perfopt.last_advisor_run()"
    else
        q -c "ALTER SYSTEM SET perfopt.param_sampling = off" -c "SELECT pg_reload_conf()" >/dev/null
        sleep 1
        q -c "INSERT INTO sets SELECT 'generic', index_def, est_size_bytes FROM perfopt.recommend_indexes($budget_mb) ORDER BY rank" \
          -c "INSERT INTO advisor_runs SELECT 'generic', perfopt.last_advisor_run()"
        q -c "ALTER SYSTEM RESET perfopt.param_sampling" -c "SELECT pg_reload_conf()" >/dev/null
    fi
fi
q -c "INSERT INTO sets SELECT 'qualstats', v #>> '{}', NULL FROM json_array_elements(pg_qualstats_index_advisor()->'indexes') v"
# the expert's set, one CREATE INDEX a line
grep -E '^CREATE INDEX' "$bench/index_advisor_params_expert.sql" | sed 's/;$//' | while IFS= read -r def; do
    q -c "INSERT INTO sets VALUES ('expert', \$d\$$def\$d\$, NULL)"
done

# the timed runs pay neither tool's recording: pg_qualstats off, and
# perfopt's sampling back at its default rate
q -c "ALTER SYSTEM SET pg_qualstats.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
if [ -n "$(q -At -c "SELECT 1 FROM pg_settings WHERE name = 'perfopt.param_sample_every'")" ]; then
    q -c "ALTER SYSTEM RESET perfopt.param_sample_every" -c "SELECT pg_reload_conf()" >/dev/null
fi

echo "== the sets"
q -P footer=off -c "SELECT config, index_def, pg_size_pretty(estimated) AS estimated FROM sets ORDER BY config"

echo "timing $ROUNDS interleaved rounds of ${CONFIGS[*]} ($APP_TX app turns + $REPORT_TX report turns each) ..."
for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $(( ${#CONFIGS[@]} - 1 ))); do
        config=${CONFIGS[$(( (i + round - 1) % ${#CONFIGS[@]} ))]}
        create_set "$config" "$round"
        run_workload "$config" "$((1000 + round))" "$round"
        drop_added_indexes
        echo "  round $round, $config: $(q -At -c "SELECT round(ms::numeric) FROM timings WHERE config = '$config' AND round = $round") ms"
    done
done

echo
echo "== disk of each set (budget $budget_mb MB = $BUDGET_PCT% of the tables' $((heap_bytes / 1048576)) MB heap)"
q -P footer=off -c "
SELECT c.config, count(s.real) AS indexes, pg_size_pretty(coalesce(sum(s.real), 0)) AS disk,
       round(coalesce(sum(s.real), 0) / 1048576.0, 1) AS mb,
       CASE WHEN coalesce(sum(s.real), 0) <= $budget_mb * 1048576 THEN 'yes' ELSE 'NO' END AS within_budget
  FROM unnest('{none,perfopt,generic,qualstats,expert}'::text[]) WITH ORDINALITY c(config, o)
  LEFT JOIN sizes s ON s.config = c.config GROUP BY c.config, c.o ORDER BY c.o"
q -P footer=off -c "SELECT config, pg_size_pretty(real) AS disk, index_def FROM sizes ORDER BY config, real DESC"

echo "== measured time of the workload, ms: median over $ROUNDS rounds (95% CI)"
printf '%-10s %26s %30s %30s\n' set "time ms" "cut vs none %" "time / expert's"
for config in "${CONFIGS[@]}"; do
    read -r m lo hi <<< "$(median_ci 1 $(q -At -c "SELECT ms FROM timings WHERE config = '$config'"))"
    read -r c clo chi <<< "$(median_ci 2 $(q -At -c "SELECT 100 * (1 - t.ms / n.ms) FROM timings t
                                   JOIN timings n ON n.round = t.round AND n.config = 'none' WHERE t.config = '$config'"))"
    read -r e elo ehi <<< "$(median_ci 3 $(q -At -c "SELECT t.ms / x.ms FROM timings t
                                   JOIN timings x ON x.round = t.round AND x.config = 'expert' WHERE t.config = '$config'"))"
    printf '%-10s %10s (%6s-%6s) %10s (%6s-%6s) %10s (%6s-%6s)\n' "$config" "$m" "$lo" "$hi" "$c" "$clo" "$chi" "$e" "$elo" "$ehi"
done

echo "== median latency per statement, ms (app: extended protocol; reports: simple)"
q -P footer=off -c "
WITH m AS (SELECT config, part, pos, min(statement) AS statement,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms
             FROM latencies GROUP BY config, part, pos)
SELECT n.part, n.pos, n.statement,
       round(n.ms::numeric, 2) AS none, round(p.ms::numeric, 2) AS perfopt, round(g.ms::numeric, 2) AS generic,
       round(s.ms::numeric, 2) AS qualstats, round(e.ms::numeric, 2) AS expert
  FROM m n
  JOIN m p ON (p.part, p.pos, p.config) = (n.part, n.pos, 'perfopt')
  JOIN m g ON (g.part, g.pos, g.config) = (n.part, n.pos, 'generic')
  JOIN m s ON (s.part, s.pos, s.config) = (n.part, n.pos, 'qualstats')
  JOIN m e ON (e.part, e.pos, e.config) = (n.part, n.pos, 'expert')
 WHERE n.config = 'none' ORDER BY n.part, n.pos"

echo "== the advisors' runs"
q -At -c "SELECT advisor || ': ' || run::text FROM advisor_runs"

# The advisor's time with STATEMENTS distinct statements in
# pg_stat_statements: as many distinct lists of leads' columns (one bit of
# i per column), each a lookup by key run once, beside the workload
echo "running $STATEMENTS distinct statements ..."
q -At <<SQL >/dev/null
SELECT format('SELECT %s FROM public.leads WHERE id = %s',
              (SELECT string_agg(col, ', ' ORDER BY n) FROM unnest('{id,email,phone,first_name,last_name,state,zip,product,status,source,agent_id,score,premium_estimate,created_at,updated_at,notes}'::text[]) WITH ORDINALITY c(col, n)
                WHERE (i >> (n::int - 1)) & 1 = 1), i % $n_leads + 1)
  FROM generate_series(1, $STATEMENTS) i
\gexec
SQL
held=$(q -At -c "SELECT count(*) FROM pg_stat_statements")
for run in 1 2 3; do
    q -c "DROP TABLE IF EXISTS r" -c "CREATE TABLE r AS SELECT index_def FROM perfopt.recommend_indexes($budget_mb)" \
      -c "INSERT INTO advisor_runs SELECT 'scale $run', perfopt.last_advisor_run()" \
      -c "INSERT INTO advisor_runs SELECT 'scale_same $run',
                 to_jsonb((SELECT array_agg(index_def ORDER BY index_def) FROM r) IS NOT DISTINCT FROM
                          (SELECT array_agg(index_def ORDER BY index_def) FROM sets WHERE config = 'perfopt'))"
done
read -r s slo shi <<< "$(median_ci 3 $(q -At -c "SELECT (run->>'seconds')::float8 FROM advisor_runs WHERE advisor LIKE 'scale _'"))"
echo "== advisor with $held statements in pg_stat_statements: median of 3 runs $s s (range $slo-$shi; target under 10 s);"
echo "   same set as before the $STATEMENTS statements: $(q -At -c "SELECT string_agg(run::text, ', ' ORDER BY advisor) FROM advisor_runs WHERE advisor LIKE 'scale_same%'")"
q -At -c "SELECT advisor || ': ' || run::text FROM advisor_runs WHERE advisor LIKE 'scale _'"
echo "   the set with them, against perfopt's set above:"
q -P footer=off -c "
SELECT coalesce(a.index_def, b.index_def) AS index_def,
       CASE WHEN a.index_def IS NULL THEN 'before only' WHEN b.index_def IS NULL THEN 'with them only' ELSE 'both' END AS in_set
  FROM r a FULL JOIN (SELECT index_def FROM sets WHERE config = 'perfopt') b ON b.index_def = a.index_def ORDER BY 2, 1"
echo "targets: perfopt's set cuts the measured time by at least 95% within the budget; the advisor answers in under 10 s"
