#!/usr/bin/env bash
# readme_tour.sh CSTACK SOURCE_DIR -- runs the tour of README.md as written.
#
# Every fenced block under an HTML comment that starts with "<!-- tour" is
# taken from README.md itself, so the tour and this test cannot drift apart.
# The blocks run in order, in one bash, in a new temporary directory laid
# out like a clone: build/cstack is the cstack under test (the ASan build's
# in the ASan suite) and examples/ a copy of the repository's.  Lines keep
# their README line numbers, so a failure names the README line.
#
# The test fails when a command fails or uses an unset variable, when an
# envelope request is answered with an error, when a sanitizer reports (the
# background server's exit included), or when a device had a change refused
# or a database parked a row: the tour must show writes the server takes.
# Whatever the tour started in the background is stopped and waited for at
# the end, failure or not.
set -u

cli=${1:?usage: readme_tour.sh CSTACK SOURCE_DIR}
src=${2:?usage: readme_tour.sh CSTACK SOURCE_DIR}
cli=$(cd "$(dirname "$cli")" && pwd)/$(basename "$cli") || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/cstack-tour-XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

fail() {
    echo "readme_tour: $*" >&2
    if [ -s "$work/log" ]; then
        echo "---- the tour's commands (+ README.md:LINE) and output ----" >&2
        cat "$work/log" >&2
    fi
    exit 1
}

mkdir "$work/build" "$work/examples" &&
    ln -s "$cli" "$work/build/cstack" &&
    cp "$src"/examples/*.cstack "$work/examples/" || fail "cannot set up $work"

# The README with every line outside a tour block blanked, so that line N of
# tour.sh is line N of README.md.
awk '
    /^<!-- tour/ { armed = 1; print ""; next }
    armed && /^```/ { armed = 0; inside = 1; blocks++; print ""; next }
    inside && /^```/ { inside = 0; print ""; next }
    inside { print; next }
    { print "" }
    END { if (blocks == 0 || inside) exit 1 }
' "$src/README.md" >"$work/tour.sh" || fail "README.md has no complete tour block"

cat >"$work/run.sh" <<'EOF'
set -eu -o pipefail
failed=$PWD/failed
trap 'echo "README.md:$LINENO: exit status $?: $BASH_COMMAND" >"$failed"' ERR
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
PS4='+ README.md:$LINENO: '
set -x
. ./tour.sh
EOF

(cd "$work" && bash run.sh </dev/null >log 2>&1)
status=$?
if [ -s "$work/failed" ]; then
    fail "$(cat "$work/failed")"
elif [ $status -ne 0 ]; then
    fail "the tour exited with status $status"
fi

if grep -n '"status":"err"' "$work/log" >&2; then
    fail "an envelope request was answered with an error"
fi
if grep -nE 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$work/log" >&2; then
    fail "a sanitizer reported an error"
fi

for db in "$work"/*.db; do
    [ -e "$db" ] || continue
    for table in _cstack_rejected _cstack_parked; do
        n=$(sqlite3 "$db" "SELECT count(*) FROM sqlite_master WHERE name = '$table'") ||
            fail "cannot read $(basename "$db")"
        [ "$n" = 0 ] && continue
        n=$(sqlite3 "$db" "SELECT count(*) FROM $table") || fail "cannot read $(basename "$db")"
        [ "$n" = 0 ] || fail "$(basename "$db") holds $n rows in $table"
    done
done
echo "readme_tour: the tour ran as written"
