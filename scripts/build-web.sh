#!/bin/sh
# Builds the browser target into OUT (default build/web): the wasm module
# (the core library, src/web/ and SQLite's amalgamation from web/node_modules),
# cstack.js, cstack.d.ts, the worker and the demo.  `make web` runs it.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build/web}
OBJ=${OUT%/*}/web-obj
AMALG=web/node_modules/better-sqlite3/deps/sqlite3
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
[ -f "$AMALG/sqlite3.c" ] || ./scripts/install-web-deps.sh
mkdir -p "$OUT" "$OBJ"

OPT="-Oz"
# What the core needs from SQLite (the preupdate hook for capture, the
# session extension's changeset helpers), and what the browser does not:
# threads, the unix VFS (src/web/vfs.c is the only one), extensions.
SQLITE_DEFS="-DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_PREUPDATE_HOOK -DSQLITE_OS_OTHER=1
  -DSQLITE_THREADSAFE=0 -DSQLITE_TEMP_STORE=3 -DSQLITE_DEFAULT_MEMSTATUS=0
  -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_SHARED_CACHE
  -DSQLITE_OMIT_PROGRESS_CALLBACK -DSQLITE_DQS=0 -DSQLITE_MAX_EXPR_DEPTH=0
-DSQLITE_DEFAULT_FOREIGN_KEYS=0 -DSQLITE_OMIT_TRACE
  -DSQLITE_OMIT_UTF16 -DSQLITE_OMIT_COMPLETE -DSQLITE_OMIT_GET_TABLE -DSQLITE_OMIT_TCL_VARIABLE"

if [ ! -f "$OBJ/sqlite3.o" ] || [ "$AMALG/sqlite3.c" -nt "$OBJ/sqlite3.o" ]; then
  # shellcheck disable=SC2086
  emcc $OPT $SQLITE_DEFS -c "$AMALG/sqlite3.c" -o "$OBJ/sqlite3.o"
fi

CORE=$(ls src/util/*.c src/value/*.c src/schema/*.c src/sql/*.c src/store/*.c src/sync/*.c \
  src/envelope/*.c src/web/*.c src/client/exchange.c src/client/state.c src/client/session.c \
  src/client/reply.c src/client/repair.c src/client/upgrade.c)
[ -d src/live ] && CORE="$CORE $(ls src/live/*.c)"
# A source is recompiled when it, or any header, is newer than its object.
newest_h=$(ls -t include/*.h src/*/*.h | head -1)
for c in $CORE; do
  o="$OBJ/$(echo "$c" | tr / _).o"
  if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then echo "$c $o"; fi
done | xargs -r -P "$(nproc 2>/dev/null || echo 2)" -n 2 sh -c \
  'emcc '"$OPT"' -std=c11 -Wall -Wno-unused-parameter -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
   -DSQLITE_ENABLE_PREUPDATE_HOOK -DCSTACK_NO_THREADS -Iinclude -Isrc -I'"$AMALG"' -c "$0" -o "$1"'
objs=$(for c in $CORE; do echo "$OBJ/$(echo "$c" | tr / _).o"; done)

EXPORTS=$(grep -ho 'EMSCRIPTEN_KEEPALIVE [^(]*' src/web/*.c | sed 's/.*[ *]\([a-z_0-9]*\)$/"_\1"/' \
  | tr '\n' ',')
# shellcheck disable=SC2086
emcc $OPT $objs "$OBJ/sqlite3.o" -o "$OUT/cstack-wasm.mjs" \
  -sMODULARIZE=1 -sEXPORT_ES6=1 -sENVIRONMENT=web,worker,node -sFILESYSTEM=0 \
  -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=16777216 -sTOTAL_STACK=262144 \
  -sEXPORTED_FUNCTIONS="[${EXPORTS}\"_malloc\",\"_free\"]" \
  -sEXPORTED_RUNTIME_METHODS='["UTF8ToString","stringToUTF8","lengthBytesUTF8"]'
cp web/cstack.js web/cstack.d.ts web/worker.js "$OUT/"
cp -R web/demo/. "$OUT/"
