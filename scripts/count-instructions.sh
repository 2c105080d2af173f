#!/usr/bin/env bash
# Instructions the server executes per warm sync invoke, counted by
# callgrind: a figure that does not move with the machine's noise, so a
# change of a few per cent on the request path can be seen (timed runs on
# a shared VM vary by ±20 %). Not a benchmark of speed — see `wasmfc bench`.
#
# Usage: bash scripts/count-instructions.sh [requests]   (default 1000)
# WASMFC_BIN=path/to/wasmfc counts another build (say, main's, for an A/B).
#
# Needs valgrind (`apt-get install valgrind`), python3 and a release build
# with the example guests (`cargo build --release -p wasmfc`,
# `bash scripts/build-guests.sh`). Under valgrind the server runs with one
# serving thread and at most one instance: the pooling allocator's address
# space reservation for more does not fit in valgrind's.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-1000}
bin=${WASMFC_BIN:-target/release/wasmfc}
guests=target/guest-examples/wasm32-wasip2/release
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no $bin: run cargo build --release -p wasmfc" >&2; exit 1; }
[ -f "$guests/noop.wasm" ] || { echo "no guests in $guests: run bash scripts/build-guests.sh" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # valgrind writes its last profile as it exits.
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A keep-alive client that sends each request in one write, as wrk and the
# bench's generator do, and reads each answer whole before the next.
cat > "$work/client.py" <<'EOF'
import socket, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 7\r\n\r\n"bench"'.encode()
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode().lower().split("\r\n")
            if not head[0].endswith(" 200 ok"):
                sys.exit(f"{path} answered {head[0]}")
            length = int(next(l for l in head if l.startswith("content-length:")).split(":")[1])
            if len(buf) >= end + 4 + length:
                break
        data = s.recv(65536)
        if not data:
            sys.exit("connection closed")
        buf += data
    buf = buf[end + 4 + length:]
EOF

# start NAME PORT ARGS...: the server under callgrind, counting nothing yet.
start() {
    local name=$1 port=$2; shift 2
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.%p" \
        "$bin" "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 120); do
        curl -s -o /dev/null -X POST "http://127.0.0.1:$port/" && return 0
        sleep 1
    done
    echo "$name did not start; its log:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

# count LABEL NAME PORT PATH: instructions per request over $requests warm
# requests.
count() {
    local label=$1 name=$2 port=$3 path=$4 pid
    pid=$(pgrep -f "callgrind-out-file=$work/$name" | head -1)
    python3 "$work/client.py" "$port" "$path" 50
    callgrind_control -i on "$pid" >/dev/null 2>&1
    python3 "$work/client.py" "$port" "$path" "$requests"
    callgrind_control -d "$label" "$pid" >/dev/null 2>&1
    callgrind_control -i off "$pid" >/dev/null 2>&1
    local total
    total=$(grep -h '^totals:' "$work/$name".*.[0-9]* | tail -1 | awk '{print $2}')
    rm -f "$work/$name".*.[0-9]*
    printf '%-24s %8d instructions per request\n' "$label" $((total / requests))
}

start baseline 9611 bench baseline-server --listen 127.0.0.1:9611
count "axum hello-world" baseline 9611 /

start wasmfc 9612 serve --listen 127.0.0.1:9612 --data-dir "$work/data" --http-threads 1 --max-instances 1
api=http://127.0.0.1:9612/2016-08-15
curl -sf -o /dev/null -X POST "$api/services" -H 'content-type: application/json' -d '{"serviceName":"s"}'
for f in noop hello; do
    curl -sf -o /dev/null -X PUT "$api/services/s/functions/$f/code" \
        -H 'content-type: application/wasm' --data-binary "@$guests/$f.wasm"
    count "wasmfc invoke $f" wasmfc 9612 "/2016-08-15/services/s/functions/$f/invocations"
done
