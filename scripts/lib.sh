# Shared by perfopt's scripts: packages, build, and throwaway clusters.
# Source it; every function stops the script with a message on failure.

PG_BIN=/usr/lib/postgresql/15/bin

# PERFOPT_STAGE=<directory>: build and install into a private copy of
# PostgreSQL 15 under that directory instead of into the system's, so that
# several trees can be built and tested side by side on one machine; the
# servers, initdb, pg_config and the tests then come from the copy
if [ -n "${PERFOPT_STAGE:-}" ]; then
    PG_BIN=$PERFOPT_STAGE/usr/lib/postgresql/15/bin
fi

# The Debian packages perfopt builds, runs and is tested with
PERFOPT_PACKAGES="build-essential postgresql-15 postgresql-server-dev-15 postgresql-contrib
    postgresql-15-hypopg libhiredis-dev redis-server libipc-run-perl sqlsmith
    libmicrohttpd-dev libcurl4-openssl-dev prometheus prometheus-alertmanager curl pgbouncer"

die() { echo "error: $*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" = 0 ] || die "run this as root: it installs packages and perfopt itself"
}

# Install whichever of the packages is missing (apt-get update only if one is)
install_packages() {
    local missing="" p
    for p in $PERFOPT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends $missing >/dev/null || die "could not install:$missing"
}

# Build perfopt in tree $1 and install it into PostgreSQL 15 (or into the
# copy under $PERFOPT_STAGE, made on first use)
build_and_install() {
    local extdir
    extdir=$(/usr/bin/pg_config --sharedir)/extension
    make -C "$1" -s PG_CONFIG=/usr/bin/pg_config >/dev/null || die "build failed"
    # a copy made earlier lacks the packages installed since (pg_qualstats
    # for the advisor's benchmarks): copy what it does not have yet
    if [ -n "${PERFOPT_STAGE:-}" ] && [ -x "$PG_BIN/postgres" ]; then
        cp -a -n /usr/lib/postgresql/15 "$PERFOPT_STAGE/usr/lib/postgresql/" || die "could not copy PostgreSQL"
        cp -a -n /usr/share/postgresql/15 "$PERFOPT_STAGE/usr/share/postgresql/" || die "could not copy PostgreSQL"
    fi
    # scripts a former build installed (an install script of a version that
    # is now reached through updates) must not shadow the update path
    rm -f "${PERFOPT_STAGE:-}$extdir"/perfopt--*.sql
    if [ -z "${PERFOPT_STAGE:-}" ]; then
        make -C "$1" -s PG_CONFIG=/usr/bin/pg_config install >/dev/null || die "make install failed"
        return 0
    fi
    if [ ! -x "$PG_BIN/postgres" ]; then
        mkdir -p "$PERFOPT_STAGE/usr/lib/postgresql" "$PERFOPT_STAGE/usr/share/postgresql"
        cp -a /usr/lib/postgresql/15 "$PERFOPT_STAGE/usr/lib/postgresql/" || die "could not copy PostgreSQL"
        cp -a /usr/share/postgresql/15 "$PERFOPT_STAGE/usr/share/postgresql/" || die "could not copy PostgreSQL"
    fi
    make -C "$1" -s PG_CONFIG=/usr/bin/pg_config install DESTDIR="$PERFOPT_STAGE" >/dev/null \
        || die "make install failed"
    chown -R postgres: "$PERFOPT_STAGE"
}

# Run a command as the postgres OS user (PostgreSQL refuses root), from /
# since the caller's directory may be closed to that user
as_postgres() {
    (cd / && runuser -u postgres -- env PATH="$PG_BIN:$PATH" "$@")
}

# A fresh directory the postgres user owns
postgres_tempdir() {
    local dir
    dir=$(mktemp -d "/tmp/perfopt-$1.XXXXXX") || die "mktemp failed"
    chown postgres: "$dir"
    echo "$dir"
}

# Start a throwaway cluster in $1 listening only on a unix socket in $1,
# port $2, with perfopt and pg_stat_statements preloaded; extra settings
# follow as further arguments (name=value)
start_cluster() {
    local dir=$1 port=$2 setting
    shift 2
    as_postgres initdb -D "$dir/data" -A trust -U postgres >/dev/null || die "initdb failed"
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir'"
        echo "port = $port"
        echo "shared_preload_libraries = 'pg_stat_statements, perfopt'"
        echo "compute_query_id = on"
        for setting in "$@"; do echo "$setting"; done
    } >> "$dir/data/postgresql.conf"
    as_postgres pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
        || { cat "$dir/server.log" >&2; die "the server did not start"; }
}

stop_cluster() {
    [ -f "$1/data/postmaster.pid" ] && as_postgres pg_ctl -D "$1/data" -m fast -w stop >/dev/null
    return 0
}

# Make database $3 in the cluster that start_cluster started in $1 (port $2)
# into the demo's sample database: perfopt, the insurance-leads schema of
# test/sample/leads.sql with $4 leads, pg_stat_statements reset, and the
# application workload of test/sample/workload.pgbench run once by pgbench
# (2 clients, 150 page views each, so every statement has 300 calls).
# Prints pgbench's summary.  The README's "The sample database" does the
# same by hand; the demo and the docs test (test/docs/) both use this.
load_sample_database() {
    local dir=$1 port=$2 db=$3 leads=$4 sample
    sample=$(cd "$(dirname "${BASH_SOURCE[0]}")/../test/sample" && pwd)
    as_postgres createdb -h "$dir" -p "$port" "$db" || die "createdb $db failed"
    as_postgres psql -h "$dir" -p "$port" -d "$db" -X -q -v ON_ERROR_STOP=1 \
        -c "SET client_min_messages = warning" -c "CREATE EXTENSION perfopt CASCADE" \
        || die "CREATE EXTENSION perfopt failed"
    # psql and pgbench read the files as postgres, who may not see the tree
    cp "$sample/leads.sql" "$sample/workload.pgbench" "$dir/" && chown postgres: "$dir/leads.sql" "$dir/workload.pgbench"
    # statistics from every row (a sample of 300 x 1000 rows), so that the
    # plans and estimates are the same at every load
    as_postgres env PGOPTIONS="-c default_statistics_target=1000" \
        psql -h "$dir" -p "$port" -d "$db" -X -q -v ON_ERROR_STOP=1 -v leads="$leads" \
        -f "$dir/leads.sql" >/dev/null || die "loading the sample schema failed"
    # the reset itself is not tracked, or a slow one (a loaded machine) would
    # show among the workload's slow statements
    as_postgres psql -h "$dir" -p "$port" -d "$db" -X -q -c "SET pg_stat_statements.track = none" \
        -c "SELECT pg_stat_statements_reset()" >/dev/null || die "pg_stat_statements_reset failed"
    as_postgres pgbench -h "$dir" -p "$port" -n -M simple -c 2 -t 150 --random-seed=1 -D leads="$leads" \
        -f "$dir/workload.pgbench" "$db" > "$dir/pgbench.out" 2>&1 \
        || { cat "$dir/pgbench.out" >&2; die "the sample workload failed"; }
    grep -E "^(number of transactions actually|latency average|tps)" "$dir/pgbench.out"
}
