#!/bin/sh
# suite.sh -- `make test`: the plain, ASan and fuzz runs of the suite (each
# built first, quietly), then exactly one summary line "N passed, N failed",
# the sum of the three runs.  A run that could not even build counts as one
# failure.  Exit status 0 only when nothing failed.
#
# The counts come from scripts/ctest-run.sh through the tally file, not from
# make's exit status, so make's own "*** [target] Error" lines of the runs
# are left out of the output: the failures' output is already there.
set -u
make=${MAKE:-make}
tally=$(mktemp "${TMPDIR:-/tmp}/cstack-suite-XXXXXX")
trap 'rm -f "$tally"' EXIT INT TERM
for run in plain asan fuzz; do
    before=$(wc -l <"$tally")
    "$make" --no-print-directory "test-$run" SUITE_TALLY="$tally" 2>&1 |
        grep -v '^make\(\[[0-9]*\]\)\{0,1\}: \*\*\* '
    if [ "$(wc -l <"$tally")" -eq "$before" ]; then
        echo "0 1" >>"$tally"
    fi
done
awk '{ p += $1; f += $2 } END { printf "%d passed, %d failed\n", p, f; exit f > 0 }' "$tally"
