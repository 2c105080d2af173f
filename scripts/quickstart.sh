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
echo "==> building wasmfc (release) and the example guests"
cargo build --release --locked -p wasmfc
bash scripts/build-guests.sh

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

echo "==> deploying the example guests to service 'examples'"
curl -sf -o /dev/null -X POST "$BASE/services" -H 'content-type: application/json' \
    -d '{"serviceName":"examples","description":"wasmfc example guests"}' || true
deploy() { # name file [settings-json]
    curl -sf -o /dev/null -X PUT "$BASE/services/examples/functions/$1/code" \
        -H 'content-type: application/wasm' --data-binary "@$2"
    if [[ -n "${3:-}" ]]; then
        curl -sf -o /dev/null -X PUT "$BASE/services/examples/functions/$1" \
            -H 'content-type: application/json' -d "$3"
    fi
    echo "    deployed $1"
}
W2=target/guest-examples/wasm32-wasip2/release
W1=target/guest-examples/wasm32-wasip1/release
deploy hello   "$W2/hello.wasm"
deploy noop    "$W2/noop.wasm"
deploy counter "$W2/counter.wasm" '{"initializer":"init"}'
deploy sleep   "$W2/sleep.wasm"   '{"timeout":60}'
# Task mode on for sleep: its async calls are tasks the console lists.
curl -sf -o /dev/null -X PUT "$BASE/services/examples/functions/sleep/async-invoke-config" \
    -H 'content-type: application/json' -d '{"statefulInvocation":true}' || true
deploy spin    "$W2/spin.wasm"    '{"timeout":2}'
deploy memhog  "$W2/memhog.wasm"  '{"memorySize":64}'
deploy fail    "$W2/fail.wasm"
deploy trap    "$W2/trap.wasm"
deploy echo    "$W1/echo-wasi.wasm"
deploy square  "$W2/square.wasm"
# Orchestrators (durable workflows; activities are the functions above).
deploy hello-sequence "$W2/hello_sequence.wasm"
deploy approval       "$W2/approval.wasm"
deploy fan-out        "$W2/fan_out.wasm"
# HTTP functions (wasi:http components) answer on their HTTP trigger.
deploy http-hello "$W2/http_hello.wasm"
deploy http-echo  "$W2/http_echo.wasm"
# One outgoing GET, to public https hosts only (allowedOutboundHosts).
deploy http-fetch "$W2/http_fetch.wasm" '{"allowedOutboundHosts":["https://*"]}'
for f in http-hello http-echo http-fetch; do
    curl -sf -o /dev/null -X POST "$BASE/services/examples/functions/$f/triggers" \
        -H 'content-type: application/json' \
        -d '{"triggerName":"web","triggerType":"http","triggerConfig":{"authType":"anonymous","methods":["GET","POST","PUT"]}}' || true
done

echo "==> first invocation: POST $BASE/services/examples/functions/hello/invocations -d 'wasmfc'"
curl -s -D - -X POST "$BASE/services/examples/functions/hello/invocations" -d 'wasmfc' | grep -iE '^(x-fc-|HTTP/)|^Hello'
echo
echo "==> an HTTP function: GET $BASE/proxy/examples/http-hello/greet?name=wasmfc"
curl -s "$BASE/proxy/examples/http-hello/greet?name=wasmfc"
echo
DT="http://${LISTEN}/runtime/webhooks/durabletask"
echo "==> an orchestration: POST $DT/orchestrators/hello-sequence (waits for the outcome)"
curl -s -X POST "$DT/orchestrators/hello-sequence?timeout=10&pollingInterval=0.1"
echo
echo "==> the web console: http://${LISTEN}/console (functions, tasks, instances, orchestrations)"
echo "wasmfc is serving on http://${LISTEN} (log: $DATA/server.log). Ctrl-C to stop."
wait $PID
