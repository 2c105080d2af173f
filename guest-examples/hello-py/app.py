"""hello-py: the hello example as a Python event function.

Built into a `wasmfc:function` component (world `event-function` of
host-api/wit/function.wit) by componentize-py; scripts/build-script-guests.sh
runs:

    componentize-py -d host-api/wit -w event-function componentize -p guest-examples/hello-py app -o hello_py.wasm

The event is a name; the answer greets it with $GREETING (default Hello).
"fail" returns a handled error, "loop..." spins forever (a timeout or a
Stop ends it: epoch interruption reaches the interpreter too).
"""

import os

from componentize_py_types import Err
from wit_world import exports


class Handler(exports.Handler):
    def handle(self, ctx, event: bytes) -> bytes:
        name = event.decode() or "world"
        if name == "fail":
            raise Err("asked to fail")
        if name.startswith("loop"):
            while True:
                pass
        print(f"hello-py: greeting {name} (request {ctx.request_id})")
        greeting = os.environ.get("GREETING", "Hello")
        return f"{greeting} {name}!".encode()


class Lifecycle(exports.Lifecycle):
    def initialize(self, ctx) -> None:
        return None
