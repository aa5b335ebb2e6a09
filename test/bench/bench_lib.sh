# Shared by the benchmarks; source after scripts/lib.sh. The index advisor
# benchmarks' helpers need q() running psql on the cluster and $dir its directory.

# The 22 TPC-H statements of the data set in $1 as files $2/q/qNN.sql, comments
# and the final semicolon removed (q15 as its one-statement form: the original
# creates a view), and $2/load.sql, which loads them into a table
# bench_queries (name, sql); postgres reads both.
tpch_statements() {
    local tpch=$1 dir=$2 f name
    mkdir "$dir/q"
    for f in "$tpch"/queries/q[0-9][0-9].sql "$tpch"/queries/q15_single_statement.sql; do
        name=$(basename "$f" .sql)
        [ "$name" = q15 ] && continue
        name=${name%_single_statement}
        sed -e 's/--.*$//' "$f" | tr '\n' ' ' | sed -e 's/;[[:space:]]*$//' > "$dir/q/$name.sql"
    done
    {
        echo "CREATE TABLE bench_queries (name text PRIMARY KEY, sql text);"
        for f in "$dir"/q/*.sql; do
            echo "\\set q \`cat $f\`"
            echo "INSERT INTO bench_queries VALUES ('$(basename "$f" .sql)', :'q');"
        done
    } > "$dir/load.sql"
    chown -R postgres: "$dir/q" "$dir/load.sql"
}

# Create the indexes listed in table $2 (index_def, estimated) one by one,
# recording each one's real size under config $1 in table sizes.
create_index_set() {
    local config=$1 table=$2 def estimated
    while IFS=$'\t' read -r def estimated; do
        [ -n "$def" ] || continue
        q -c "$def"
        q -c "INSERT INTO sizes SELECT '$config', \$d\$$def\$d\$, nullif('$estimated', '')::bigint,
                     pg_relation_size((SELECT max(indexrelid) FROM pg_index))"
    done < <(q -At -F $'\t' -c "SELECT index_def, estimated FROM $table")
    q -c "ANALYZE"
}

# Drop every index of schema public that backs no constraint
drop_added_indexes() {
    q -At -c "SELECT 'DROP INDEX ' || i.indexrelid::regclass || ';' FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
              WHERE c.relnamespace = 'public'::regnamespace
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)" > "$dir/drop.sql"
    chown postgres: "$dir/drop.sql"
    q -f "$dir/drop.sql"
}

# Real index sizes against the estimates, per index and per set
report_sizes() {
    q -P footer=off -c "
    SELECT config, index_def, pg_size_pretty(estimated) AS estimated, pg_size_pretty(real) AS real,
           round((estimated::numeric / nullif(real, 0)), 2) AS estimate_over_real
      FROM sizes ORDER BY config, index_def"
    q -P footer=off -c "
    SELECT config, count(*) AS indexes, pg_size_pretty(sum(real)) AS total_real,
           pg_size_pretty(sum(estimated)) AS total_estimated,
           round(sum(estimated)::numeric / nullif(sum(real) FILTER (WHERE estimated IS NOT NULL), 0), 2) AS estimate_over_real
      FROM sizes GROUP BY config"
}

# median of a list of numbers with its distribution-free 95% confidence
# interval, to DIGITS decimals: "median low high" (order statistics k and
# n + 1 - k, k from the binomial distribution)
median_ci() {
    local digits=$1
    shift
    python3 -c '
import sys, math
d = int(sys.argv[1])
x = sorted(float(v) for v in sys.argv[2:])
n = len(x)
m = (x[(n - 1) // 2] + x[n // 2]) / 2
k = 0
while k + 1 <= n and sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n <= 0.025:
    k += 1
lo, hi = (x[k - 1], x[n - k]) if k >= 1 else (x[0], x[-1])
print("%.*f %.*f %.*f" % (d, m, d, lo, d, hi))' "$digits" "$@"
}

# Build and install commit $2 of the repository at $1 into the stage $3, for
# a benchmark that compares this build with an older one in the same run
build_baseline() {
    local top=$1 rev=$2 stage=$3 src
    src=$(mktemp -d /tmp/perfopt-baseline-src.XXXXXX)
    git -C "$top" archive "$rev" | tar -x -C "$src" || die "could not extract $rev"
    (PERFOPT_STAGE=$stage; PG_BIN=$stage/usr/lib/postgresql/15/bin; build_and_install "$src")
    rm -rf "$src"
    echo "baseline: $(git -C "$top" log -1 --format='%h %s' "$rev" | cut -c1-100)"
}

# pgbench's transactions $2..$3 of workload $1 (tpcb-like or select-only)
# as single-user input, one statement a line (the same statements in every
# run: the instruction counts of two builds compare)
tpcb_input() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
workload, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(first, last + 1):
    aid = 1 + (i * 7919) % 100000
    if workload == "select-only":
        print("SELECT abalance FROM pgbench_accounts WHERE aid = %d;" % aid)
        continue
    tid = 1 + (i * 13) % 10
    bid = 1
    delta = (i * 31) % 10001 - 5000
    print("BEGIN;")
    print("UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %d;" % (delta, aid))
    print("SELECT abalance FROM pgbench_accounts WHERE aid = %d;" % aid)
    print("UPDATE pgbench_tellers SET tbalance = tbalance + %d WHERE tid = %d;" % (delta, tid))
    print("UPDATE pgbench_branches SET bbalance = bbalance + %d WHERE bid = %d;" % (delta, bid))
    print("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (%d, %d, %d, %d, CURRENT_TIMESTAMP);"
          % (tid, bid, aid, delta))
    print("END;")
PY
}

# sync_option DEFAULT: SYNC, the synchronous_commit of a benchmark's
# clusters, on or off, DEFAULT when unset
sync_option() {
    SYNC=${SYNC:-$1}
    case $SYNC in on|off) ;; *) die "SYNC is on or off" ;; esac
}

# The cache benchmarks' options: SYNC (off by default, a stricter test; on is
# PostgreSQL's default), and REDIS_SOCKET=1, the worker reaching Redis over
# its unix socket rather than loopback TCP.  Sets $transport, which says which.
cache_bench_options() {
    sync_option off
    REDIS_SOCKET=${REDIS_SOCKET:-}
    transport="loopback TCP"
    if [ -n "$REDIS_SOCKET" ]; then transport="its unix socket"; fi
}

# start_bench_redis DIR PORT: a throwaway redis-server in DIR on loopback
# PORT (and on DIR/redis.sock with REDIS_SOCKET), waited for; sets
# redis_pid, and redis_conf to the perfopt settings that reach it.
start_bench_redis() {
    local dir=$1 port=$2 socket_opts=()
    redis_conf=("perfopt.redis_port = $port")
    if [ -n "$REDIS_SOCKET" ]; then
        socket_opts=(--unixsocket "$dir/redis.sock" --unixsocketperm 777)
        redis_conf+=("perfopt.redis_host = '$dir/redis.sock'")
    fi
    redis-server --port "$port" --bind 127.0.0.1 "${socket_opts[@]}" --save '' --appendonly no --dir "$dir" \
        --logfile "$dir/redis.log" --daemonize no &
    redis_pid=$!
    for _ in $(seq 50); do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
}

# The columns of the tables of scale_tables after the third, up to column
# $1, as a table definition in a format() string in SQL takes them (quotes
# doubled): int, text, timestamptz and numeric in turn, each with a default
extra_columns() {
    local c out=""
    for ((c = 4; c <= $1; c++)); do
        case $((c % 4)) in
            0) out+=", c$c int DEFAULT $c" ;;
            1) out+=", c$c text DEFAULT ''value $c''" ;;
            2) out+=", c$c timestamptz DEFAULT ''2026-01-01''" ;;
            3) out+=", c$c numeric DEFAULT $c.5" ;;
        esac
    done
    echo "$out"
}

# The SQL that makes the tables of scale.sh and catalog_reads.sh, in one
# transaction: public.t1 .. public.t$1, each with a key, a value and a text
# (and the columns after the third up to column $2: extra_columns) and an
# index on the value; with $3 = row, one row in each
scale_tables() {
    local insert=""
    [ "${3:-}" = row ] && insert="EXECUTE format('INSERT INTO public.t%s VALUES (1, 1, ''x'')', i);"
    cat <<SQL
DO \$\$
BEGIN
    FOR i IN 1..$1 LOOP
        EXECUTE format('CREATE TABLE public.t%s (id int PRIMARY KEY, a int, b text$(extra_columns "$2"))', i);
        EXECUTE format('CREATE INDEX t%s_a ON public.t%s (a)', i, i);
        $insert
    END LOOP;
END
\$\$;
SQL
}
