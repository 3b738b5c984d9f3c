#!/bin/sh
# Starts the web demo (docs/web.md): builds the tool and build/web, writes
# development tokens for two users (alice, bob) into build/web/dev-config.json
# so that the page signs in by itself, and runs `cstack serve --web build/web`
# until Ctrl-C.  PORT (default 8090) picks the port.
set -eu
cd "$(dirname "$0")/.."
make --no-print-directory build web
PORT=${PORT:-8090}
SECRET=${CSTACK_JWT_SECRET:-cstack-web-demo-secret}
ALICE=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
BOB=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
cat > build/web/dev-config.json <<JSON
{"users": {
  "alice": {"id": "$ALICE", "token": "$(./build/cstack token --secret "$SECRET" --sub "$ALICE")"},
  "bob": {"id": "$BOB", "token": "$(./build/cstack token --secret "$SECRET" --sub "$BOB")"}
}}
JSON
echo "web demo: open http://127.0.0.1:$PORT/ (alice) or http://127.0.0.1:$PORT/?user=bob"
exec ./build/cstack serve --schema web/demo/notes.cstack --db build/web-demo.db --port "$PORT" \
  --web build/web --jwt-secret "$SECRET"
