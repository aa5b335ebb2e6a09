#!/usr/bin/env bash
# The docs test: runs every SQL example of README.md and docs/*.md against
# the demo's sample database and compares its output with the documents'
# (test/docs/run.py; conventions in docs/testing.md#docs-as-tests).
#
#   bash test/docs/docs_test.sh [TREE [FILE...]]
#
# Run as root, after perfopt is built and installed (scripts/test.sh does
# both, and runs this with PERFOPT_TESTS including "docs").  Starts its own
# throwaway cluster (perfopt.database = 'leads') and redis-server, loads the
# sample database as scripts/demo.sh does, leaves nothing running.  Ends with
# "docs: N passed, N failed, N skipped, N known failing"; exits non-zero when
# an example failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
tree=${1:-$(cd "$here/../.." && pwd)}
shift || true

require_root
LEADS=100000
PORT=5433
dir=$(postgres_tempdir docs)
redis_pid=""
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    stop_cluster "$dir"
    rm -rf "$dir"
}
trap cleanup EXIT

# the cache examples need a Redis: a throwaway one on a free loopback port
rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no >/dev/null &
redis_pid=$!

# psql, and the server's own libpq connections (the health checker's to
# the instance 'dbname=leads' that the routing examples register), reach
# this cluster as libpq's defaults reach a reader's server
export PATH="$PG_BIN:$PATH" PGHOST="$dir" PGPORT="$PORT" PGDATABASE=leads PGUSER=postgres
start_cluster "$dir" "$PORT" "perfopt.database = 'leads'" "perfopt.sample_interval = 5s" \
    "perfopt.redis_port = $rport"
echo "docs test: loading the sample database ($LEADS leads) and running its workload"
load_sample_database "$dir" "$PORT" leads "$LEADS" >/dev/null

# the examples read what the sampler recorded after the workload: wait for
# two samples (a rate needs two), at most a minute
for _ in $(seq 60); do
    n=$(psql -X -At -c "SELECT count(DISTINCT ts) FROM perfopt.metrics
                         WHERE ts > (SELECT max(stats_reset) FROM pg_stat_statements_info)" 2>/dev/null)
    [ "${n:-0}" -ge 2 ] && break
    sleep 1
done

DOCS_TEST_RESULTS=${DOCS_TEST_RESULTS:-$dir} python3 "$here/run.py" --self-test "$here/selftest" "$tree" "$@"
status=$?
if [ $status != 0 ]; then
    echo "docs test: the end of the server's log"
    tail -n 30 "$dir/server.log"
fi
exit $status
