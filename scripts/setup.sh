#!/usr/bin/env bash
# Installs what building and testing wasmfc needs on a fresh machine:
# the wasm targets for the example guests, Node.js for the JavaScript one,
# clippy/rustfmt, and (with --python) a venv holding the official FC and Durable Functions SDKs and
# Debian's Chromium with its WebDriver, which the console's browser tests
# drive.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip1 wasm32-wasip2
# Node.js runs componentize-js for the JavaScript example guest
# (scripts/build-script-guests.sh); Python's venv runs componentize-py.
if ! command -v npm >/dev/null; then
    apt_sudo=()
    if [[ "$(id -u)" != 0 ]]; then apt_sudo=(sudo); fi
    "${apt_sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${apt_sudo[@]}" apt-get install -y -qq nodejs npm >/dev/null
fi
if [[ "${1:-}" == "--python" ]]; then
    rustup component add clippy rustfmt
    if [[ ! -x .venv/bin/python ]]; then
        python3 -m venv .venv
    fi
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        sudo_cmd=()
        if [[ "$(id -u)" != 0 ]]; then sudo_cmd=(sudo); fi
        "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
fi
