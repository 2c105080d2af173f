#!/usr/bin/env bash
# Builds the example guests into target/guest-examples (the same place
# tests/build.rs puts them). Prints nothing but cargo's output.
set -euo pipefail
cd "$(dirname "$0")/.."
components=(hello noop spin memhog fail trap sleep counter http-hello http-echo http-fetch square hello-sequence approval fan-out)
args=()
for c in "${components[@]}"; do args+=(-p "$c"); done
cargo build --release --locked --manifest-path guest-examples/Cargo.toml \
    --target wasm32-wasip2 --target-dir target/guest-examples "${args[@]}"
cargo build --release --locked --manifest-path guest-examples/Cargo.toml \
    --target wasm32-wasip1 --target-dir target/guest-examples -p echo-wasi
