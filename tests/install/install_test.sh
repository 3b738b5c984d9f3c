#!/bin/sh
# install_test.sh -- the install, as a user of the library meets it (CTest
# test "install", docs/install.md).
#
#   install_test.sh BUILD_DIR LIBDIR CC PKG_CONFIG VERSION [CFLAGS...]
#
# Installs BUILD_DIR into a temporary prefix (`cmake --install`), checks the
# installed files, sonames and exported symbols, builds probe.c with nothing
# but `pkg-config --cflags --libs cstack` and probe_server.c with nothing but
# `pkg-config --cflags --libs cstack-server` (PKG_CONFIG_PATH pointing into
# the prefix), links probe.c once more against libcstack.a, runs all three and
# P/bin/cstack --version.  CFLAGS are added to every compile and link (the
# sanitizer flags of an ASan build, whose libraries need its runtime).  The
# prefix is removed at the end, whatever happened.  Exit status 0 when every
# check passed; the first failure is printed and ends the test.
set -eu

if [ $# -lt 5 ]; then
    echo "usage: install_test.sh BUILD_DIR LIBDIR CC PKG_CONFIG VERSION [CFLAGS...]" >&2
    exit 2
fi
build=$1 libdir=$2 cc=$3 pkgconfig=$4 version=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)
major=${version%%.*}

work=$(mktemp -d "${TMPDIR:-/tmp}/cstack-install-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
prefix=$work/prefix
lib=$prefix/$libdir

fail() {
    echo "install test: $*" >&2
    exit 1
}

step() {
    echo "== $*"
}

step "cmake --install into a temporary prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; fail "cmake --install failed"; }

step "the installed files"
for f in bin/cstack include/cstack.h include/cstack_server.h \
    "$libdir/libcstack.so.$version" "$libdir/libcstack.so.$major" "$libdir/libcstack.so" \
    "$libdir/libcstack.a" \
    "$libdir/libcstack_server.so.$version" "$libdir/libcstack_server.so.$major" \
    "$libdir/libcstack_server.so" "$libdir/libcstack_server.a" \
    "$libdir/pkgconfig/cstack.pc" "$libdir/pkgconfig/cstack-server.pc"; do
    [ -e "$prefix/$f" ] || fail "$f is not installed"
done
for name in cstack cstack_server; do
    [ "$(readlink "$lib/lib$name.so")" = "lib$name.so.$major" ] ||
        fail "lib$name.so does not point to lib$name.so.$major"
    [ "$(readlink "$lib/lib$name.so.$major")" = "lib$name.so.$version" ] ||
        fail "lib$name.so.$major does not point to lib$name.so.$version"
    soname=$(readelf -d "$lib/lib$name.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [ "$soname" = "lib$name.so.$major" ] || fail "lib$name.so.$version has soname '$soname'"
done

step "exported symbols (nm -D --defined-only)"
others=$(nm -D --defined-only "$lib/libcstack.so.$version" | awk '{print $3}' | grep -v '^cstack_' || true)
[ -z "$others" ] || fail "libcstack.so exports names outside cstack_*: $(echo $others | head -c 400)"
others=$(nm -D --defined-only "$lib/libcstack_server.so.$version" | awk '{print $3}' |
    grep -v '^cstack_server_' || true)
[ -z "$others" ] ||
    fail "libcstack_server.so exports names outside cstack_server_*: $(echo $others | head -c 400)"
nm -D --defined-only "$lib/libcstack.so.$version" | grep -q ' cstack_open$' ||
    fail "libcstack.so does not export cstack_open"

PKG_CONFIG_PATH=$lib/pkgconfig
export PKG_CONFIG_PATH
[ "$("$pkgconfig" --modversion cstack)" = "$version" ] || fail "cstack.pc does not say $version"
[ "$("$pkgconfig" --modversion cstack-server)" = "$version" ] ||
    fail "cstack-server.pc does not say $version"

step "a program built with pkg-config --cflags --libs cstack"
# shellcheck disable=SC2046 # pkg-config's output is a list of words
"$cc" "$@" -o "$work/probe" "$here/probe.c" $("$pkgconfig" --cflags --libs cstack) ||
    fail "probe.c does not build against the installed library"
readelf -d "$work/probe" | grep -q "libcstack.so.$major" || fail "probe is not linked to libcstack.so.$major"
out=$(LD_LIBRARY_PATH=$lib "$work/probe") || fail "probe failed: $out"
echo "$out"
echo "$out" | grep -q "^cstack $version " || fail "probe printed no 'cstack $version'"

step "the same program linked statically against libcstack.a"
# shellcheck disable=SC2046
"$cc" "$@" -o "$work/probe_static" "$here/probe.c" $("$pkgconfig" --cflags cstack) \
    -Wl,--as-needed -Wl,-Bstatic -lcstack -Wl,-Bdynamic $("$pkgconfig" --static --libs cstack) ||
    fail "probe.c does not link against libcstack.a"
if readelf -d "$work/probe_static" | grep -q 'libcstack\.so'; then
    fail "probe_static still needs libcstack.so"
fi
out=$(env -u LD_LIBRARY_PATH "$work/probe_static") || fail "probe_static failed: $out"
echo "$out" | grep -q "^cstack $version " || fail "probe_static printed no 'cstack $version'"

step "a program embedding the server, built with pkg-config --cflags --libs cstack-server"
# shellcheck disable=SC2046
"$cc" "$@" -o "$work/probe_server" "$here/probe_server.c" \
    $("$pkgconfig" --cflags --libs cstack-server) ||
    fail "probe_server.c does not build against the installed server library"
out=$(LD_LIBRARY_PATH=$lib "$work/probe_server" "$work") || fail "probe_server failed: $out"
echo "$out"

step "P/bin/cstack --version"
out=$("$prefix/bin/cstack" --version) || fail "cstack --version failed"
[ "$out" = "cstack $version" ] || fail "cstack --version printed '$out'"
echo "$out"
echo "install test: every check passed"
