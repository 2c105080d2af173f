"""Tasks across API generations: a task submitted through aliyun-fc2 (FC
2.0) is listed and stopped through alibabacloud-fc20230330 (FC 3.0), and
the reverse, with the same states and history on both sides.

Run by tests/tests/it/sdk.rs with WASMFC_ENDPOINT, WASMFC_HOSTPORT,
WASMFC_AK, WASMFC_SK and GUEST_* in the environment.
"""

import base64
import os
import time

import fc2
from alibabacloud_fc20230330 import models as m
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import utils_models as oa
from alibabacloud_tea_util import models as util_models

AK, SK = os.environ["WASMFC_AK"], os.environ["WASMFC_SK"]
v2 = fc2.Client(endpoint=os.environ["WASMFC_ENDPOINT"], accessKeyID=AK, accessKeySecret=SK)
v3 = Client(oa.Config(access_key_id=AK, access_key_secret=SK, endpoint=os.environ["WASMFC_HOSTPORT"],
                      protocol="http", region_id="cn-hangzhou"))
runtime = util_models.RuntimeOptions()


def step(name):
    print("--", name, flush=True)


def raw(method, path):
    headers = v2._build_common_headers(method, path, {})
    return v2._do_request(method, path, headers)


def v2_task(service, function, task_id):
    return raw("GET", f"/2016-08-15/services/{service}/functions/{function}/stateful-async-invocations/{task_id}").json()


def v2_list(service, function):
    return raw("GET", f"/2016-08-15/services/{service}/functions/{function}/stateful-async-invocations").json()[
        "invocations"]


def v3_task(name, task_id):
    return v3.get_async_task(name, task_id, m.GetAsyncTaskRequest()).body


def wait(read, status, timeout=30):
    deadline = time.time() + timeout
    while True:
        got = read()
        if got == status:
            return
        assert time.time() < deadline, (got, status)
        time.sleep(0.02)


def same_history(v2_events, v3_events):
    a = [(e["eventId"], e["status"], e["timestamp"]) for e in v2_events]
    b = [(e.event_id, e.status, e.timestamp) for e in v3_events]
    assert a == b, (a, b)


step("FC 2.0 submits, FC 3.0 lists and stops")
v2.create_service("xsvc")
v2.create_function("xsvc", "sleepy", "wasm", "h", codeZipFile=os.environ["GUEST_SLEEP"], timeout=60)
v2.put_function_async_invoke_config("xsvc", "LATEST", "sleepy", {"statefulInvocation": True})
v2.invoke_function("xsvc", "sleepy", payload=b"30000",
                   headers={"x-fc-invocation-type": "Async", "x-fc-stateful-async-invocation-id": "from-v2"})
name = "xsvc$sleepy"
listed = v3.list_async_tasks(name, m.ListAsyncTasksRequest(prefix="from-")).body.tasks
assert [t.task_id for t in listed] == ["from-v2"], [t.to_map() for t in listed]
wait(lambda: v3_task(name, "from-v2").status, "Running")
v3.stop_async_task(name, "from-v2", m.StopAsyncTaskRequest())
wait(lambda: v2_task("xsvc", "sleepy", "from-v2")["status"], "Stopped")
same_history(v2_task("xsvc", "sleepy", "from-v2")["events"], v3_task(name, "from-v2").events)

step("FC 3.0 submits, FC 2.0 lists and stops")
code = m.InputCodeLocation(zip_file=base64.b64encode(open(os.environ["GUEST_SLEEP"], "rb").read()).decode())
v3.create_function(m.CreateFunctionRequest(body=m.CreateFunctionInput(
    function_name="nap", runtime="wasm", handler="h", timeout=60, code=code)))
v3.put_async_invoke_config("nap", m.PutAsyncInvokeConfigRequest(body=m.PutAsyncInvokeConfigInput(async_task=True)))
v3.invoke_function_with_options("nap", m.InvokeFunctionRequest(body=b"30000"),
                                m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_async_task_id="from-v3"),
                                runtime)
# The 3.0 function `nap` is the 2.0 function `nap` of service `nap`.
assert [t["invocationId"] for t in v2_list("nap", "nap")] == ["from-v3"]
wait(lambda: v2_task("nap", "nap", "from-v3")["status"], "Running")
raw("PUT", "/2016-08-15/services/nap/functions/nap/stateful-async-invocations/from-v3")
wait(lambda: v3_task("nap", "from-v3").status, "Stopped")
same_history(v2_task("nap", "nap", "from-v3")["events"], v3_task("nap", "from-v3").events)

step("one registry: a 3.0 name taken is a 2.0 service taken, and the reverse")
try:
    v2.create_service("nap")
    raise AssertionError("service 'nap' created twice")
except fc2.FcError as e:
    assert e.status_code == 409, e.message
try:
    v3.create_function(m.CreateFunctionRequest(body=m.CreateFunctionInput(
        function_name="xsvc", runtime="wasm", handler="h", code=code)))
    raise AssertionError("function 'xsvc' created over service 'xsvc'")
except Exception as e:  # the SDK's ClientException
    assert getattr(e, "status_code", None) == 409, e

print("all checks passed")
