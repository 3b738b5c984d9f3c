#!/bin/sh
# Starts and stops a throwaway PostgreSQL cluster for the tests and the
# benchmarks (docs/testing.md, "PostgreSQL").
#
#   scripts/pg-cluster.sh start STATE   initdb in a new temporary directory,
#                                       start the server on 127.0.0.1 and a
#                                       free port, write STATE, print the URL
#   scripts/pg-cluster.sh stop STATE    stop it and remove its directory
#   scripts/pg-cluster.sh url STATE     print the URL of a started cluster
#
# STATE is a small file of shell assignments (PG_URL, PG_DIR, PG_BIN).  The
# cluster runs as the `postgres` user when started by root (PostgreSQL
# refuses to run as root), accepts connections from loopback only, trusts
# the role `cstack` (a superuser) and listens on its own Unix socket in its
# directory.  PG_CLUSTER_OPTS adds server options (e.g. "-c fsync=off").
# Any failure prints why and exits 1: a suite that needs PostgreSQL must
# fail loudly, never skip.
set -eu

die() { echo "pg-cluster: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 start|stop|url STATE"
cmd=$1
state=$2

pg_bin() {
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    return 1
}

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

stop_cluster() {
    [ -f "$state" ] || return 0
    # shellcheck disable=SC1090
    . "$state"
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    case "${PG_DIR:-}" in
        */cstack-pg.*) rm -rf "$PG_DIR" ;;
    esac
    rm -f "$state"
}

case "$cmd" in
start)
    stop_cluster
    bin=$(pg_bin) || die "PostgreSQL's server is not installed (scripts/install-deps.sh installs the Debian package postgresql)"
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        die "there is no 'postgres' user to run the cluster as (the Debian package postgresql creates it)"
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/cstack-pg.XXXXXX")
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    if ! as_owner "$bin/initdb" -D "$dir/data" -U cstack --auth=trust -E UTF8 --no-locale \
            >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf "$dir"
        die "initdb failed"
    fi
    port=$(free_port) || die "cannot find a free port"
    # shellcheck disable=SC2086
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 ${PG_CLUSTER_OPTS:-}" \
            start >/dev/null 2>&1; then
        cat "$dir/server.log" >&2 2>/dev/null || true
        rm -rf "$dir"
        die "the PostgreSQL server did not start (log above)"
    fi
    url="postgresql://cstack@127.0.0.1:$port/postgres"
    mkdir -p "$(dirname "$state")"
    {
        echo "PG_URL='$url'"
        echo "PG_DIR='$dir'"
        echo "PG_BIN='$bin'"
    } >"$state"
    echo "$url"
    ;;
stop)
    stop_cluster
    ;;
url)
    [ -f "$state" ] || die "no cluster started with state file $state"
    # shellcheck disable=SC1090
    . "$state"
    echo "$PG_URL"
    ;;
*)
    die "unknown command '$cmd' (start, stop or url)"
    ;;
esac
