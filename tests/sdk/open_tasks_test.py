"""Task mode through alibabacloud-fc-open20210406, unchanged: async invoke
config, async invoke with an id, list (every filter) / get / stop, and
list_stateful_async_invocation_functions.
"""

import base64
import os
import time

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_openapi import exceptions as oa_errors
from alibabacloud_tea_openapi import utils_models as oa
from alibabacloud_tea_util import models as util_models

c = Client(oa.Config(access_key_id=os.environ["WASMFC_AK"], access_key_secret=os.environ["WASMFC_SK"],
                     endpoint=os.environ["WASMFC_HOSTPORT"], protocol="http", region_id="cn-hangzhou"))
runtime = util_models.RuntimeOptions()
S = "otasks"


def b64_file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def step(name):
    print("--", name, flush=True)


def invoke_async(fn, payload, inv_id):
    return c.invoke_function_with_options(
        S, fn, m.InvokeFunctionRequest(body=payload),
        m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_stateful_async_invocation_id=inv_id), runtime)


def get(fn, inv_id):
    return c.get_stateful_async_invocation(S, fn, inv_id, m.GetStatefulAsyncInvocationRequest(qualifier="LATEST")).body


def wait(fn, inv_id, status, timeout=20):
    deadline = time.time() + timeout
    while True:
        t = get(fn, inv_id)
        if t.status == status:
            return t
        assert time.time() < deadline, (inv_id, t.to_map())
        time.sleep(0.02)


step("setup")
c.create_service(m.CreateServiceRequest(service_name=S))
for name, guest, timeout in [("sleep", "GUEST_SLEEP", 60), ("sink", "GUEST_ECHO_WASI", 10)]:
    c.create_function(S, m.CreateFunctionRequest(function_name=name, runtime="wasm", handler="h", timeout=timeout,
                                                 code=m.Code(zip_file=b64_file(os.environ[guest]))))

step("async invoke config: put / get / list")
dest = f"acs:fc:cn-local:0:services/{S}.LATEST/functions/sink"
r = c.put_function_async_invoke_config(S, "sleep", m.PutFunctionAsyncInvokeConfigRequest(
    qualifier="LATEST", max_async_event_age_in_seconds=3600, max_async_retry_attempts=1, stateful_invocation=True,
    destination_config=m.DestinationConfig(on_success=m.Destination(destination=dest))))
assert r.body.stateful_invocation is True and r.body.max_async_retry_attempts == 1, r.body.to_map()
got = c.get_function_async_invoke_config(S, "sleep", m.GetFunctionAsyncInvokeConfigRequest(qualifier="LATEST")).body
assert got.destination_config.on_success.destination == dest, got.to_map()
assert got.max_async_event_age_in_seconds == 3600
configs = c.list_function_async_invoke_configs(S, "sleep", m.ListFunctionAsyncInvokeConfigsRequest(limit=10)).body
assert [x.qualifier for x in configs.configs] == ["LATEST"], configs.to_map()
c.put_function_async_invoke_config(S, "sink", m.PutFunctionAsyncInvokeConfigRequest(
    qualifier="LATEST", stateful_invocation=True))

step("async invoke with ids")
for i in range(4):
    r = invoke_async("sleep", f"{10 + i}".encode(), f"ojob-{i}")
    assert r.status_code == 202, r.status_code
    assert r.headers["x-fc-stateful-async-invocation-id"] == f"ojob-{i}"
r = invoke_async("sleep", b"30000", "long-1")
try:
    invoke_async("sleep", b"1", "ojob-0")
    raise AssertionError("a duplicate id was accepted")
except oa_errors.ClientException as e:
    assert e.status_code == 409 and e.code == "StatefulAsyncInvocationAlreadyExists", e.data

step("get")
t = wait("sleep", "ojob-2", "Succeeded")
assert t.return_payload == "slept 12 ms" and t.invocation_payload == "12", t.to_map()
assert [e.status for e in t.events] == ["Enqueued", "Dequeued", "Running", "Succeeded"], t.to_map()
assert t.destination_status.startswith("Succeeded"), t.destination_status
for i in range(4):
    wait("sleep", f"ojob-{i}", "Succeeded")

step("list with every filter")
now = int(time.time() * 1000)
req = m.ListStatefulAsyncInvocationsRequest(invocation_id_prefix="ojob", limit=2, sort_order_by_time="desc",
                                            include_payload=True, status="Succeeded", qualifier="LATEST",
                                            started_time_begin=now - 600_000, started_time_end=now + 600_000)
page1 = c.list_stateful_async_invocations(S, "sleep", req).body
assert [x.invocation_id for x in page1.invocations] == ["ojob-3", "ojob-2"], page1.to_map()
assert page1.invocations[0].invocation_payload == "13"
req.next_token = page1.next_token
page2 = c.list_stateful_async_invocations(S, "sleep", req).body
assert [x.invocation_id for x in page2.invocations] == ["ojob-1", "ojob-0"], page2.to_map()
asc = c.list_stateful_async_invocations(S, "sleep", m.ListStatefulAsyncInvocationsRequest(
    sort_order_by_time="asc", limit=100)).body
assert [x.invocation_id for x in asc.invocations] == ["ojob-0", "ojob-1", "ojob-2", "ojob-3", "long-1"], asc.to_map()
assert asc.invocations[0].invocation_payload is None
none = c.list_stateful_async_invocations(S, "sleep", m.ListStatefulAsyncInvocationsRequest(
    started_time_end=1000)).body
assert not none.invocations

step("stop")
wait("sleep", "long-1", "Running")
c.stop_stateful_async_invocation(S, "sleep", "long-1", m.StopStatefulAsyncInvocationRequest(qualifier="LATEST"))
t = wait("sleep", "long-1", "Stopped", timeout=5)
assert [e.status for e in t.events][-2:] == ["Stopping", "Stopped"], t.to_map()
try:
    c.stop_stateful_async_invocation(S, "sleep", "long-1", m.StopStatefulAsyncInvocationRequest(qualifier="LATEST"))
    raise AssertionError("stopping a finished task succeeded")
except oa_errors.ClientException as e:
    assert e.code == "StatefulAsyncInvocationAlreadyCompleted", e.data

step("list_stateful_async_invocation_functions")
funcs = c.list_stateful_async_invocation_functions(m.ListStatefulAsyncInvocationFunctionsRequest(limit=10)).body
names = sorted((x.service_name, x.function_name, x.qualifier) for x in funcs.data)
assert names == [(S, "sink", "LATEST"), (S, "sleep", "LATEST")], funcs.to_map()

step("the destination got the records")
sink = c.list_stateful_async_invocations(S, "sink", m.ListStatefulAsyncInvocationsRequest(limit=100)).body
assert len(sink.invocations) == 4, sink.to_map()

step("delete async invoke config")
c.delete_function_async_invoke_config(S, "sleep", m.DeleteFunctionAsyncInvokeConfigRequest(qualifier="LATEST"))
try:
    c.get_function_async_invoke_config(S, "sleep", m.GetFunctionAsyncInvokeConfigRequest(qualifier="LATEST"))
    raise AssertionError("deleted config still there")
except oa_errors.ClientException as e:
    assert e.status_code == 404, e.data
print("alibabacloud-fc-open20210406 task mode: all checks passed")
