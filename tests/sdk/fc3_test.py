"""alibabacloud-fc20230330 (FC 3.0, 2023-03-30, ACS3 signing) against a
running wasmfc, unchanged: functions (zip and raw wasm), code, sync invoke
(log tail, handled and unhandled errors), versions and aliases, async
invoke configs with asyncTask, async tasks (ids, x-fc-async-delay, list
filters and paging, get, stop), provision configs with a scheduled action
in a time zone, reserved concurrency (enforced), HTTP triggers, instances,
signatures, and bad input refused with nothing stored.

Run by tests/tests/it/sdk.rs with WASMFC_HOSTPORT, WASMFC_AK, WASMFC_SK and
GUEST_* in the environment.
"""

import base64
import io
import json
import os
import threading
import time
import zipfile

import requests
from alibabacloud_fc20230330 import models as m
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import exceptions as oa_errors
from alibabacloud_tea_openapi import utils_models as oa
from alibabacloud_tea_util import models as util_models

HOSTPORT = os.environ["WASMFC_HOSTPORT"]
AK = os.environ["WASMFC_AK"]
SK = os.environ["WASMFC_SK"]
runtime = util_models.RuntimeOptions()


def client(ak=AK, sk=SK):
    return Client(oa.Config(access_key_id=ak, access_key_secret=sk, endpoint=HOSTPORT,
                            protocol="http", region_id="cn-hangzhou"))


c = client()


def step(name):
    print("--", name, flush=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def b64(data):
    return base64.b64encode(data).decode()


def zipped(name, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, data)
    return buf.getvalue()


def expect_error(fn, status, code):
    try:
        fn()
    except oa_errors.ClientException as e:
        assert e.status_code == status, (e.status_code, e.data)
        assert e.code == code, (e.code, e.data)
        assert e.data["RequestId"] and e.data["Message"], e.data
        return e
    raise AssertionError(f"expected ClientException {status} {code}")


def create(name, guest, **settings):
    code = m.InputCodeLocation(zip_file=b64(read(os.environ[guest])))
    body = m.CreateFunctionInput(function_name=name, runtime="wasm", handler="h", code=code, **settings)
    return c.create_function(m.CreateFunctionRequest(body=body)).body


def invoke(name, payload, qualifier=None, **headers):
    return c.invoke_function_with_options(name, m.InvokeFunctionRequest(body=payload, qualifier=qualifier),
                                          m.InvokeFunctionHeaders(**headers), runtime)


def task(name, task_id):
    return c.get_async_task(name, task_id, m.GetAsyncTaskRequest()).body


def wait_task(name, task_id, status, timeout=30):
    deadline = time.time() + timeout
    while True:
        t = task(name, task_id)
        if t.status == status:
            return t
        assert time.time() < deadline, t.to_map()
        time.sleep(0.02)


step("functions: create from a zip and from raw wasm, get, list, update")
hello_zip = zipped("hello.wasm", read(os.environ["GUEST_HELLO"]))
f = c.create_function(m.CreateFunctionRequest(body=m.CreateFunctionInput(
    function_name="hello3", runtime="wasm", handler="hello.wasm",
    code=m.InputCodeLocation(zip_file=b64(hello_zip)),
    memory_size=128, timeout=30, environment_variables={"GREETING": "Hallo"}, description="3.0 greeter",
    internet_access=False))).body
assert f.function_name == "hello3" and f.function_arn.endswith(":functions/hello3"), f.to_map()
assert f.state == "Active" and f.internet_access is False and f.code_checksum, f.to_map()
create("fail3", "GUEST_FAIL")
create("trap3", "GUEST_TRAP")
expect_error(lambda: create("hello3", "GUEST_HELLO"), 409, "FunctionAlreadyExists")
got = c.get_function("hello3", m.GetFunctionRequest()).body
assert got.environment_variables == {"GREETING": "Hallo"} and got.description == "3.0 greeter", got.to_map()
names = [x.function_name for x in c.list_functions(m.ListFunctionsRequest(prefix="fail")).body.functions]
assert names == ["fail3"], names
first = c.list_functions(m.ListFunctionsRequest(limit=1)).body
assert len(first.functions) == 1 and first.next_token, first.to_map()
rest = c.list_functions(m.ListFunctionsRequest(next_token=first.next_token, limit=100)).body
assert first.functions[0].function_name not in [x.function_name for x in rest.functions]
u = c.update_function("hello3", m.UpdateFunctionRequest(body=m.UpdateFunctionInput(timeout=20, internet_access=True))).body
assert u.timeout == 20 and u.environment_variables == {"GREETING": "Hallo"}, u.to_map()
assert u.internet_access is True and c.get_function("hello3", m.GetFunctionRequest()).body.internet_access is True
code = c.get_function_code("hello3", m.GetFunctionCodeRequest()).body
assert code.checksum == f.code_checksum and code.url.startswith("http://"), code.to_map()
assert requests.get(code.url, timeout=30).content == hello_zip

step("invoke: sync, log tail, handled and unhandled errors")
r = invoke("hello3", b"Oslo")
assert r.status_code == 200 and r.body.read() == b"Hallo Oslo!"
assert r.headers["x-fc-request-id"] and r.headers["x-fc-code-checksum"] == f.code_checksum, r.headers
r = invoke("hello3", b"Bergen", x_fc_invocation_type="Sync", x_fc_log_type="Tail")
assert r.body.read() == b"Hallo Bergen!"
assert "greeting Bergen" in base64.b64decode(r.headers["x-fc-log-result"]).decode()
r = invoke("fail3", b"y")
assert r.headers["x-fc-error-type"] == "HandledInvocationError" and b"boom: y" in r.body.read()
r = invoke("trap3", b"y")
assert r.headers["x-fc-error-type"] == "UnhandledInvocationError" and b"Trap" in r.body.read()

step("versions and aliases")
v1 = c.publish_function_version("hello3", m.PublishFunctionVersionRequest(
    body=m.PublishVersionInput(description="v1"))).body
assert v1.version_id == "1" and v1.description == "v1", v1.to_map()
c.update_function("hello3", m.UpdateFunctionRequest(body=m.UpdateFunctionInput(
    environment_variables={"GREETING": "Hej"})))
a = c.create_alias("hello3", m.CreateAliasRequest(body=m.CreateAliasInput(alias_name="live", version_id="1"))).body
assert a.alias_name == "live" and a.version_id == "1", a.to_map()
assert invoke("hello3", b"Turku", qualifier="live").body.read() == b"Hallo Turku!"
assert invoke("hello3", b"Turku").body.read() == b"Hej Turku!"
assert c.get_function("hello3", m.GetFunctionRequest(qualifier="live")).body.environment_variables == {
    "GREETING": "Hallo"}
v2 = c.publish_function_version("hello3", m.PublishFunctionVersionRequest(body=m.PublishVersionInput())).body
assert v2.version_id == "2"
ids = sorted(x.version_id for x in c.list_function_versions("hello3", m.ListFunctionVersionsRequest()).body.versions)
assert ids == ["1", "2"], ids
a = c.update_alias("hello3", "live", m.UpdateAliasRequest(body=m.UpdateAliasInput(
    version_id="2", additional_version_weight={"1": 0.25}, description="canary"))).body
assert a.version_id == "2" and a.additional_version_weight == {"1": 0.25} and a.description == "canary", a.to_map()
assert [x.alias_name for x in c.list_aliases("hello3", m.ListAliasesRequest()).body.aliases] == ["live"]
assert c.get_alias("hello3", "live").body.version_id == "2"
expect_error(lambda: c.get_function("hello3", m.GetFunctionRequest(qualifier="nope")), 404, "AliasNotFound")
expect_error(lambda: invoke("hello3", b"x", qualifier="nope"), 404, "AliasNotFound")

step("async invoke config with asyncTask")
create("sleep3", "GUEST_SLEEP", timeout=60)
cfg = c.put_async_invoke_config("sleep3", m.PutAsyncInvokeConfigRequest(qualifier="LATEST", body=m.PutAsyncInvokeConfigInput(
    async_task=True, max_async_retry_attempts=0, max_async_event_age_in_seconds=3600))).body
assert cfg.async_task is True and cfg.function_arn.endswith(":functions/sleep3"), cfg.to_map()
assert c.get_async_invoke_config("sleep3", m.GetAsyncInvokeConfigRequest()).body.max_async_event_age_in_seconds == 3600
listed = c.list_async_invoke_configs(m.ListAsyncInvokeConfigsRequest(function_name="sleep3")).body.configs
assert [x.async_task for x in listed] == [True], [x.to_map() for x in listed]
expect_error(lambda: c.put_async_invoke_config("fail3", m.PutAsyncInvokeConfigRequest(
    body=m.PutAsyncInvokeConfigInput(async_task="yes"))), 400, "InvalidArgument")
expect_error(lambda: c.get_async_invoke_config("fail3", m.GetAsyncInvokeConfigRequest()), 404, "AsyncConfigNotExists")

step("async invoke with a task id and with x-fc-async-delay")
for i in range(4):
    r = invoke("sleep3", f"{10 + i}".encode(), x_fc_invocation_type="Async", x_fc_async_task_id=f"t3-{i}")
    assert r.status_code == 202 and r.headers["x-fc-async-task-id"] == f"t3-{i}", r.headers
r = invoke("sleep3", b"30000", x_fc_invocation_type="Async", x_fc_async_task_id="long-3")
expect_error(lambda: invoke("sleep3", b"1", x_fc_invocation_type="Async", x_fc_async_task_id="t3-0"),
             409, "StatefulAsyncInvocationAlreadyExists")
r = invoke("sleep3", b"10", x_fc_invocation_type="Async", x_fc_async_task_id="later-3",
           common_headers={"x-fc-async-delay": "600"})
assert r.status_code == 202
assert task("sleep3", "later-3").status == "Enqueued"

step("list / get async tasks: filters, paging, includePayload")
for i in range(4):
    wait_task("sleep3", f"t3-{i}", "Succeeded")
page = c.list_async_tasks("sleep3", m.ListAsyncTasksRequest(prefix="t3-", status="Succeeded", limit=3,
                                                           sort_order_by_time="asc", include_payload=True)).body
assert [t.task_id for t in page.tasks] == ["t3-0", "t3-1", "t3-2"] and page.next_token, page.to_map()
assert page.tasks[0].task_payload == "10" and page.tasks[0].function_arn.endswith(":functions/sleep3")
more = c.list_async_tasks("sleep3", m.ListAsyncTasksRequest(prefix="t3-", status="Succeeded", limit=3,
                                                           sort_order_by_time="asc", next_token=page.next_token)).body
assert [t.task_id for t in more.tasks] == ["t3-3"] and more.tasks[0].task_payload is None, more.to_map()
started = page.tasks[1].started_time
window = c.list_async_tasks("sleep3", m.ListAsyncTasksRequest(prefix="t3-", started_time_begin=started,
                                                             started_time_end=started)).body
assert [t.task_id for t in window.tasks] == ["t3-1"], window.to_map()
t = task("sleep3", "t3-2")
assert t.return_payload == "slept 12 ms" and t.task_payload == "12" and t.duration_ms is not None, t.to_map()
assert [e.status for e in t.events][0] == "Enqueued" and t.events[-1].status == "Succeeded", t.to_map()

step("stop async tasks")
wait_task("sleep3", "long-3", "Running")
c.stop_async_task("sleep3", "long-3", m.StopAsyncTaskRequest())
wait_task("sleep3", "long-3", "Stopped")
c.stop_async_task("sleep3", "later-3", m.StopAsyncTaskRequest())
assert wait_task("sleep3", "later-3", "Stopped").events[-1].status == "Stopped"
expect_error(lambda: c.stop_async_task("sleep3", "t3-0", m.StopAsyncTaskRequest()), 400, "AsyncTaskAlreadyCompleted")

step("bad input: unknown function and task, bad task id, limit out of range, invalid wasm")
expect_error(lambda: c.get_function("nope3", m.GetFunctionRequest()), 404, "FunctionNotFound")
expect_error(lambda: task("sleep3", "no-such-task"), 404, "AsyncTaskNotFound")
expect_error(lambda: invoke("sleep3", b"1", x_fc_invocation_type="Async", x_fc_async_task_id="bad id!"),
             400, "InvalidArgument")
assert c.list_async_tasks("sleep3", m.ListAsyncTasksRequest(prefix="bad")).body.tasks == []
expect_error(lambda: c.list_async_tasks("sleep3", m.ListAsyncTasksRequest(limit=500)), 400, "InvalidArgument")
expect_error(lambda: c.create_function(m.CreateFunctionRequest(body=m.CreateFunctionInput(
    function_name="badwasm3", runtime="wasm", handler="h",
    code=m.InputCodeLocation(zip_file=b64(b"\0asm\x01\0\0\0garbage"))))), 400, "InvalidArgument")
expect_error(lambda: c.get_function("badwasm3", m.GetFunctionRequest()), 404, "FunctionNotFound")

step("provision config with a scheduled action in a time zone")
action = m.ScheduledAction(name="morning", schedule_expression="cron(0 0 8 * * *)", target=2,
                           time_zone="Asia/Shanghai", start_time="2024-01-01T00:00:00", end_time="2099-01-01T00:00:00")
p = c.put_provision_config("hello3", m.PutProvisionConfigRequest(qualifier="live", body=m.PutProvisionConfigInput(
    default_target=1, scheduled_actions=[action]))).body
assert p.scheduled_actions[0].time_zone == "Asia/Shanghai" and p.function_arn.endswith(":functions/hello3"), p.to_map()
deadline = time.time() + 30
while True:
    p = c.get_provision_config("hello3", m.GetProvisionConfigRequest(qualifier="live")).body
    # The action fires daily and its window opened in 2024: it is in force.
    if p.current == 2 and p.default_target == 1:
        break
    assert time.time() < deadline, p.to_map()
    time.sleep(0.05)
listed = c.list_provision_configs(m.ListProvisionConfigsRequest()).body.provision_configs
assert [x.function_arn.rsplit("/", 1)[1] for x in listed] == ["hello3"], [x.to_map() for x in listed]
expect_error(lambda: c.put_provision_config("hello3", m.PutProvisionConfigRequest(
    qualifier="live", body=m.PutProvisionConfigInput(default_target=1, scheduled_actions=[m.ScheduledAction(
        name="x", schedule_expression="cron(0 0 8 * * *)", target=1, time_zone="Mars/Olympus")]))),
    400, "InvalidArgument")
c.delete_provision_config("hello3", m.DeleteProvisionConfigRequest(qualifier="live"))

step("scaling config: the same provisioned target, 3.0's newer face")
sc = c.put_scaling_config("hello3", m.PutScalingConfigRequest(qualifier="live", body=m.PutScalingConfigInput(
    min_instances=1, horizontal_scaling_policies=[m.ScalingPolicy(
        name="busy", metric_type="ProvisionedConcurrencyUtilization", metric_target=0.6, min_instances=1,
        max_instances=3)]))).body
assert sc.min_instances == 1 and sc.horizontal_scaling_policies[0].max_instances == 3, sc.to_map()
deadline = time.time() + 30
while c.get_scaling_config("hello3", m.GetScalingConfigRequest(qualifier="live")).body.current_instances != 1:
    assert time.time() < deadline
    time.sleep(0.05)
p = c.get_provision_config("hello3", m.GetProvisionConfigRequest(qualifier="live")).body
assert p.default_target == 1 and p.target_tracking_policies[0].max_capacity == 3, p.to_map()
assert len(c.list_scaling_configs(m.ListScalingConfigsRequest(function_name="hello3")).body.scaling_configs) == 1
c.delete_scaling_config("hello3", m.DeleteScalingConfigRequest(qualifier="live"))
expect_error(lambda: c.get_scaling_config("hello3", m.GetScalingConfigRequest(qualifier="live")), 404,
             "ScalingConfigNotFound")

step("reserved concurrency, enforced")
create("slow3", "GUEST_SLEEP", timeout=60)
cc = c.put_concurrency_config("slow3", m.PutConcurrencyConfigRequest(body=m.PutConcurrencyInput(reserved_concurrency=1))).body
assert cc.reserved_concurrency == 1 and cc.function_arn.endswith(":functions/slow3"), cc.to_map()
assert c.get_concurrency_config("slow3").body.reserved_concurrency == 1
assert [x.reserved_concurrency for x in c.list_concurrency_configs(m.ListConcurrencyConfigsRequest()).body.configs] == [1]
first = threading.Thread(target=lambda: invoke("slow3", b"8000"))
first.start()
deadline = time.time() + 30
while not c.list_instances("slow3", m.ListInstancesRequest()).body.instances:
    assert time.time() < deadline
    time.sleep(0.02)
expect_error(lambda: invoke("slow3", b"1"), 429, "ResourceExhausted")
first.join()
assert invoke("slow3", b"1").body.read() == b"slept 1 ms"
c.put_concurrency_config("slow3", m.PutConcurrencyConfigRequest(body=m.PutConcurrencyInput(reserved_concurrency=0)))
expect_error(lambda: invoke("slow3", b"1"), 429, "ResourceExhausted")
c.delete_concurrency_config("slow3")
assert invoke("slow3", b"1").body.read() == b"slept 1 ms"
expect_error(lambda: c.get_concurrency_config("slow3"), 404, "ConcurrencyConfigNotFound")

step("an HTTP trigger, called at its URL")
create("web3", "GUEST_HTTP_HELLO")
t = c.create_trigger("web3", m.CreateTriggerRequest(body=m.CreateTriggerInput(
    trigger_name="h", trigger_type="http", qualifier="LATEST",
    trigger_config=json.dumps({"authType": "anonymous", "methods": ["GET", "POST"]})))).body
assert json.loads(t.trigger_config)["methods"] == ["GET", "POST"], t.to_map()
url = t.http_trigger.url_internet
r = requests.post(url + "a/b", data=b"x", timeout=30)
assert r.status_code == 200 and r.json()["path"] == "/a/b", (r.status_code, r.text)
assert [x.trigger_name for x in c.list_triggers("web3", m.ListTriggersRequest()).body.triggers] == ["h"]
assert c.get_trigger("web3", "h").body.http_trigger.url_internet == url

step("instances")
invoke("hello3", b"x")
instances = c.list_instances("hello3", m.ListInstancesRequest()).body.instances
assert instances and all(i.instance_id for i in instances), [i.to_map() for i in instances]

step("delete a function")
c.delete_function("trap3")
expect_error(lambda: c.get_function("trap3", m.GetFunctionRequest()), 404, "FunctionNotFound")

step("signatures")
expect_error(lambda: client(sk="wrong").get_function("hello3", m.GetFunctionRequest()), 403, "SignatureNotMatch")
expect_error(lambda: client(ak="nobody").list_functions(m.ListFunctionsRequest()), 403, "InvalidAccessKeyID")

print("all checks passed")
