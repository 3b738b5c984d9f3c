#!/bin/sh
# Installs the Debian packages cstack needs to build and test, only when they
# are missing, so `make demo` and `make test` work on a fresh Debian 12 machine.
set -eu

PKGS="build-essential cmake pkg-config libsqlite3-dev sqlite3 libcriterion-dev
libjansson-dev clang libclang-rt-14-dev python3 libmicrohttpd-dev libcurl4-openssl-dev
libjwt-dev liblmdb-dev libpq-dev postgresql"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
