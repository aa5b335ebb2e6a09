#!/usr/bin/env bash
# Runs every test of perfopt: installs what is missing, builds and installs
# perfopt, then runs the pg_regress tests and the TAP tests as the postgres
# user in a copy of the tree it owns.  Ends with "N passed, N failed" and
# exits non-zero if anything failed.  Run as root on Debian 12.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"

require_root
install_packages
build_and_install "$top"

work=$(postgres_tempdir test)
trap 'rm -rf "$work"' EXIT
cp -a "$top/." "$work/"
chown -R postgres: "$work"

passed=0
failed=0

# PERFOPT_TESTS="regress 001 016" runs only those (while developing); the
# default, and what CI runs, is every test
only=${PERFOPT_TESTS:-}
selected() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }

# pg_regress: one line per test, "ok" or "FAILED"
if selected regress; then
echo "== regression tests"
as_postgres make -C "$work" -s installcheck TAP_TESTS= > "$work/regress.log" 2>&1
grep -E '^(test| ) .* \.\.\. ' "$work/regress.log"
r_ok=$(grep -cE '\.\.\. ok' "$work/regress.log")
r_failed=$(grep -cE '\.\.\. FAILED' "$work/regress.log")
if [ "$r_ok" = 0 ] && [ "$r_failed" = 0 ]; then
    cat "$work/regress.log"
    r_failed=1
fi
[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
passed=$((passed + r_ok))
failed=$((failed + r_failed))
fi

# the docs test: one count per SQL example of README.md and docs/*.md
if selected docs; then
echo "== docs test"
bash "$work/test/docs/docs_test.sh" "$work" > "$work/docs.log" 2>&1
status=$?
cat "$work/docs.log"
d_ok=$(sed -n 's/^docs: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' "$work/docs.log")
d_failed=$(sed -n 's/^docs: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' "$work/docs.log")
if [ $status != 0 ] && [ "${d_failed:-0}" = 0 ]; then
    d_failed=1
fi
passed=$((passed + ${d_ok:-0}))
failed=$((failed + ${d_failed:-0}))
fi

# TAP: one count per assertion; a script that dies counts as one failure
echo "== TAP tests"
for t in "$work"/test/t/*.pl; do
    name=test/t/$(basename "$t")
    selected "$(basename "$t" | cut -c1-3)" || continue
    log="$work/tap-$(basename "$t" .pl).log"
    as_postgres make -C "$work" -s installcheck REGRESS= PROVE_TESTS="$name" PROVE_FLAGS="-v -I test/perl" > "$log" 2>&1
    status=$?
    t_ok=$(grep -cE '^ok [0-9]+' "$log")
    t_failed=$(grep -cE '^not ok [0-9]+' "$log")
    if [ $status != 0 ] && [ "$t_failed" = 0 ]; then
        t_failed=1
    fi
    echo "$name: $t_ok passed, $t_failed failed"
    if [ "$t_failed" != 0 ]; then
        cat "$log"
        tail -n 50 "$work"/tmp_check/log/*.log 2>/dev/null
    fi
    passed=$((passed + t_ok))
    failed=$((failed + t_failed))
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
