"""http-hello-py: an HTTP function in Python (a `wasi:http/proxy` component).

Built by componentize-py against the wasi:http WIT that wasmtime-wasi-http
ships (scripts/build-script-guests.sh finds it with `cargo metadata`):

    componentize-py -d $WASI_HTTP/wit -w wasi:http/proxy@0.2.12 componentize -p guest-examples/http-hello-py app -o http_hello_py.wasm

GET answers "Hello from Python at PATH!"; POST answers the request body
upper-cased. `x-wasmfc-served` counts the requests this instance has
answered (a module global: it grows only when the instance is reused). A
path ending in /trap raises before answering, which traps the instance.
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# Requests this instance has answered.
served = 0

# wasi:io output streams take at most 4096 bytes per blocking write.
WRITE_CHUNK = 4096


def read_body(request: IncomingRequest) -> bytes:
    """The whole request body (read until the stream reports closed)."""
    body = request.consume()
    data = bytearray()
    with body.stream() as stream:
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise
    return bytes(data)


def respond(response_out: ResponseOutparam, status: int, text: bytes) -> None:
    headers = Fields.from_list(
        [
            ("content-type", b"text/plain; charset=utf-8"),
            ("x-wasmfc-served", str(served).encode()),
        ]
    )
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with body.write() as stream:
        for start in range(0, len(text), WRITE_CHUNK):
            stream.blocking_write_and_flush(text[start : start + WRITE_CHUNK])
    OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        global served
        path = (request.path_with_query() or "/").split("?", 1)[0]
        if path.endswith("/trap"):
            raise RuntimeError("http-hello-py was asked to trap")
        served += 1
        if isinstance(request.method(), Method_Post):
            respond(response_out, 200, read_body(request).upper())
        else:
            respond(response_out, 200, f"Hello from Python at {path}!\n".encode())
