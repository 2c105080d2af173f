"""Task mode through aliyun-fc2, unchanged: async invoke config, async
invoke with the id header, and the 2016-08-15 task routes (which aliyun-fc2
has no methods for) through its own signer and transport.
"""

import json
import os
import time

import fc2

client = fc2.Client(endpoint=os.environ["WASMFC_ENDPOINT"], accessKeyID=os.environ["WASMFC_AK"],
                    accessKeySecret=os.environ["WASMFC_SK"])
S = "ftasks"


def step(name):
    print("--", name, flush=True)


def raw(method, path):
    headers = client._build_common_headers(method, path, {})
    return client._do_request(method, path, headers)


def get(fn, inv_id, qualifier=None):
    svc = f"{S}.{qualifier}" if qualifier else S
    return raw("GET", f"/2016-08-15/services/{svc}/functions/{fn}/stateful-async-invocations/{inv_id}").json()


def wait(fn, inv_id, status, timeout=20):
    deadline = time.time() + timeout
    while True:
        t = get(fn, inv_id)
        if t["status"] == status:
            return t
        assert time.time() < deadline, t
        time.sleep(0.02)


step("setup")
client.create_service(S)
client.create_function(S, "sleep", "wasm", "h", codeZipFile=os.environ["GUEST_SLEEP"], timeout=60)

step("async invoke config")
cfg = {"maxAsyncEventAgeInSeconds": 600, "maxAsyncRetryAttempts": 2, "statefulInvocation": True}
r = client.put_function_async_invoke_config(S, "LATEST", "sleep", cfg)
assert r.data["statefulInvocation"] is True and r.data["qualifier"] == "LATEST", r.data
assert client.get_function_async_invoke_config(S, "LATEST", "sleep").data["maxAsyncRetryAttempts"] == 2
assert len(client.list_function_async_invoke_configs(S, "sleep").data["configs"]) == 1

step("async invoke with the id header")
r = client.invoke_function(S, "sleep", payload=b"15",
                           headers={"x-fc-invocation-type": "Async", "x-fc-stateful-async-invocation-id": "fjob-1"})
assert r.headers["x-fc-stateful-async-invocation-id"] == "fjob-1"
try:
    client.invoke_function(S, "sleep", payload=b"15",
                           headers={"x-fc-invocation-type": "Async", "x-fc-stateful-async-invocation-id": "fjob-1"})
    raise AssertionError("duplicate accepted")
except fc2.FcError as e:
    assert e.status_code == 409 and e.err_code == "StatefulAsyncInvocationAlreadyExists", e.message
t = wait("sleep", "fjob-1", "Succeeded")
assert t["returnPayload"] == "slept 15 ms", t
assert get("sleep", "fjob-1", qualifier="LATEST")["invocationId"] == "fjob-1"

step("2016-08-15 task routes: list and stop (PUT)")
client.invoke_function(S, "sleep", payload=b"30000",
                       headers={"x-fc-invocation-type": "Async", "x-fc-stateful-async-invocation-id": "fjob-2"})
wait("sleep", "fjob-2", "Running")
listed = raw("GET", f"/2016-08-15/services/{S}.LATEST/functions/sleep/stateful-async-invocations").json()
assert {t["invocationId"] for t in listed["invocations"]} == {"fjob-1", "fjob-2"}, listed
raw("PUT", f"/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations/fjob-2")
t = wait("sleep", "fjob-2", "Stopped", timeout=5)
print(json.dumps([e["status"] for e in t["events"]]))

step("delete async invoke config")
client.delete_function_async_invoke_config(S, "LATEST", "sleep")
try:
    client.get_function_async_invoke_config(S, "LATEST", "sleep")
    raise AssertionError("deleted config still there")
except fc2.FcError as e:
    assert e.status_code == 404, e.message
print("aliyun-fc2 task mode: all checks passed")
