#!/usr/bin/env bash
# Builds the Python and JavaScript example guests into
# target/guest-examples/script/: hello-py and http-hello-py with
# componentize-py (PyPI, pinned in guest-examples/hello-py/requirements.txt,
# in its own venv under target/guest-tools), hello-js with componentize-js
# (npm, pinned in guest-examples/hello-js/package-lock.json). Rebuilds only
# what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/guest-examples/script
tools=target/guest-tools
mkdir -p "$out" "$tools"

newer() { # output inputs... : true when output is missing or older than an input
    local target=$1; shift
    [[ ! -f "$target" ]] && return 0
    for f in "$@"; do [[ "$f" -nt "$target" ]] && return 0; done
    return 1
}

componentize_py_installed() {
    if [[ ! -x "$tools/venv/bin/componentize-py" ]] || newer "$tools/venv/.installed" guest-examples/hello-py/requirements.txt; then
        python3 -m venv "$tools/venv"
        "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r guest-examples/hello-py/requirements.txt
        touch "$tools/venv/.installed"
    fi
}

if newer "$out/hello_py.wasm" guest-examples/hello-py/app.py host-api/wit/function.wit guest-examples/hello-py/requirements.txt; then
    componentize_py_installed
    "$tools/venv/bin/componentize-py" -d host-api/wit -w event-function \
        componentize -p guest-examples/hello-py app -o "$out/hello_py.wasm"
fi

# The HTTP function in Python targets wasi:http/proxy at the WIT version
# the runtime's wasmtime-wasi-http serves, from that crate's own wit/.
if newer "$out/http_hello_py.wasm" guest-examples/http-hello-py/app.py guest-examples/hello-py/requirements.txt Cargo.lock; then
    componentize_py_installed
    host=$(rustc -vV | sed -n 's/^host: //p')
    wasi_http=$(cargo metadata --format-version 1 --filter-platform "$host" --quiet \
        | python3 -c 'import json, sys, os; m = json.load(sys.stdin); print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "wasmtime-wasi-http"))')
    version=$(sed -n 's/.*include wasi:http\/proxy@\([0-9.]*\);.*/\1/p' "$wasi_http/wit/world.wit")
    "$tools/venv/bin/componentize-py" -d "$wasi_http/wit" -w "wasi:http/proxy@$version" \
        componentize -p guest-examples/http-hello-py app -o "$out/http_hello_py.wasm"
fi

if newer "$out/hello_js.wasm" guest-examples/hello-js/hello.js host-api/wit/function.wit guest-examples/hello-js/package-lock.json; then
    if [[ ! -x guest-examples/hello-js/node_modules/.bin/componentize-js ]] \
        || newer guest-examples/hello-js/node_modules/.installed guest-examples/hello-js/package-lock.json; then
        (cd guest-examples/hello-js && npm ci --silent --no-audit --no-fund)
        touch guest-examples/hello-js/node_modules/.installed
    fi
    guest-examples/hello-js/node_modules/.bin/componentize-js guest-examples/hello-js/hello.js \
        --wit host-api/wit -n event-function -d http fetch-event -o "$out/hello_js.wasm"
fi
