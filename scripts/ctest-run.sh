#!/bin/sh
# ctest-run.sh NAME DIR [CTEST ARGS...] -- one ctest run of the suite, quietly
# (Makefile: test-plain, test-asan, test-fuzz).
#
# Runs ctest in DIR with --output-on-failure and its output in DIR/ctest.log,
# prints one line "NAME: P of T tests passed (log: DIR/ctest.log)", and when a
# test failed, the log without the lines of the tests that passed: each
# failure with its output.  When SUITE_TALLY names a file, appends "P F" to it
# for `make test`'s total.  Exit status: ctest's.
set -u
name=$1 dir=$2
shift 2
log=$dir/ctest.log
(cd "$dir" && ctest --output-on-failure "$@") >"$log" 2>&1
rc=$?
counts=$(sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests failed out of \([0-9]*\)$/\1 \2/p' "$log" |
    tail -n 1)
if [ -n "$counts" ]; then
    failed=${counts% *} total=${counts#* }
else
    # No summary: ctest itself failed (no tests found, a crash).
    failed=1 total=1
    [ "$rc" -ne 0 ] || rc=1
fi
passed=$((total - failed))
if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
    grep -v -E '^ +Start +[0-9]+: |Test +#[0-9]+: .* Passed ' "$log"
fi
echo "$name: $passed of $total tests passed (log: $log)"
if [ -n "${SUITE_TALLY:-}" ]; then
    echo "$passed $failed" >>"$SUITE_TALLY"
fi
exit "$rc"
