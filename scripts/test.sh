#!/usr/bin/env bash
# Quick start, command 2: set up and run the whole test suite.
# CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> setup (wasm targets, clippy/rustfmt, Python SDK venv)"
bash scripts/setup.sh --python

echo "==> the Python and JavaScript example guests (componentize-py, componentize-js)"
bash scripts/build-script-guests.sh

echo "==> format"
cargo fmt --all --check
cargo fmt --all --check --manifest-path guest-examples/Cargo.toml
cargo fmt --check --manifest-path host-api/Cargo.toml

echo "==> layers (imports flow one way)"
python3 scripts/check-layers.py

echo "==> clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> build"
cargo build --workspace --all-targets --locked

echo "==> test"
cargo test --workspace --locked

# The same black-box suite with every server on PostgreSQL (each test's
# server gets a database of its own on one throwaway PostgreSQL). The
# cluster and migration tests start their own PostgreSQL and ran above.
echo "==> test: the black-box suite on PostgreSQL"
WASMFC_TEST_STORE=postgres cargo test --workspace --locked --test it -- --skip cluster:: --skip postgres_store::
