#!/usr/bin/env bash
# `wasmfc bench cluster` on a throwaway PostgreSQL: initdb in a temp dir,
# pg_ctl on a free loopback port (as the `postgres` user when run as root,
# since PostgreSQL refuses root), stopped on exit. Arguments go to the
# benchmark, e.g. `bash scripts/bench-cluster.sh --json`.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${WASMFC_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
tmp="$(mktemp -d)"
chmod 755 "$tmp"
data="$tmp/pg/data"
mkdir -p "$tmp/pg"
as_pg=()
if [[ "$(id -u)" == 0 ]]; then
    chown postgres "$tmp/pg"
    as_pg=(runuser -u postgres --)
fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cleanup() {
    "${as_pg[@]}" "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"${as_pg[@]}" "$bin/initdb" -D "$data" -U wasmfc --auth=trust -E UTF8 --locale=C >/dev/null
# Commits are fsynced as in production; a node's many small transactions
# are what the benchmark measures.
"${as_pg[@]}" "$bin/pg_ctl" -D "$data" -l "$tmp/pg/log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $tmp/pg -c max_connections=200" start >/dev/null

cargo build --release -p wasmfc
bash scripts/build-guests.sh >/dev/null
target/release/wasmfc bench cluster --admin-url "postgres://wasmfc@127.0.0.1:$port/postgres" "$@"
