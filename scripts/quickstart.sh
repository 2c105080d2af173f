#!/usr/bin/env bash
# Quick start, command 1: set up, build, start the server on the embedded
# store (./wasmfc-data), deploy the example guests, show a first invocation,
# and keep serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN="${WASMFC_LISTEN:-127.0.0.1:9000}"
DATA="${WASMFC_DATA:-./wasmfc-data}"
BASE="http://${LISTEN}/2016-08-15"

echo "==> setup"
bash scripts/setup.sh
echo "==> building wasmfc (release)"
cargo build --release --locked -p wasmfc

echo "==> starting wasmfc on ${LISTEN} (data: ${DATA})"
mkdir -p "$DATA"
./target/release/wasmfc serve --listen "$LISTEN" --data-dir "$DATA" > "$DATA/stdout.log" 2> "$DATA/server.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do
    grep -q "listening on" "$DATA/stdout.log" 2>/dev/null && break
    kill -0 $PID 2>/dev/null || { cat "$DATA/server.log"; exit 1; }
    sleep 0.1
done

echo "==> deploying the example guests (guest-examples/wasmfc.toml: builds them, then applies the plan)"
./target/release/wasmfc deploy --endpoint "http://${LISTEN}" -f guest-examples/wasmfc.toml

echo "==> first invocation: POST $BASE/services/examples/functions/hello/invocations -d 'wasmfc'"
curl -s -D - -X POST "$BASE/services/examples/functions/hello/invocations" -d 'wasmfc' | grep -iE '^(x-fc-|HTTP/)|^Hello'
echo
echo "==> the same greeting in Python and JavaScript, with the CLI: wasmfc invoke examples/hello-py --data wasmfc"
./target/release/wasmfc invoke --endpoint "http://${LISTEN}" examples/hello-py --data wasmfc
./target/release/wasmfc invoke --endpoint "http://${LISTEN}" examples/hello-js --data wasmfc
echo "==> an HTTP function: GET $BASE/proxy/examples/http-hello/greet?name=wasmfc"
curl -s "$BASE/proxy/examples/http-hello/greet?name=wasmfc"
echo
echo "==> the HTTP function in Python: GET $BASE/proxy/examples/http-hello-py/greet"
curl -s "$BASE/proxy/examples/http-hello-py/greet"
DT="http://${LISTEN}/runtime/webhooks/durabletask"
echo "==> an orchestration: POST $DT/orchestrators/hello-sequence (waits for the outcome)"
curl -s -X POST "$DT/orchestrators/hello-sequence?timeout=10&pollingInterval=0.1"
echo
echo "==> the web console: http://${LISTEN}/console (functions, tasks, instances, orchestrations)"
echo "wasmfc is serving on http://${LISTEN} (log: $DATA/server.log). Ctrl-C to stop."
wait $PID
