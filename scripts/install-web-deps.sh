#!/bin/sh
# Installs what the browser target needs (docs/web.md): Debian's emscripten
# and chromium when missing (chromium in an apt command of its own), and the
# npm packages of web/package.json into web/node_modules (git-ignored):
# SQLite's amalgamation (better-sqlite3's deps/sqlite3, source only: its
# install scripts are not run), playwright-core, and the official
# @sqlite.org/sqlite-wasm as the benchmark baseline.
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
updated=""
apt_install() {
  [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}
command -v emcc >/dev/null 2>&1 || apt_install emscripten
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
command -v chromium >/dev/null 2>&1 || apt_install chromium
if [ ! -f web/node_modules/better-sqlite3/deps/sqlite3/sqlite3.c ] ||
   [ ! -d web/node_modules/playwright-core ] || [ ! -d web/node_modules/@sqlite.org/sqlite-wasm ]; then
  (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
