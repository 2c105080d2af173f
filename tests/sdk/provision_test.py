"""Provision config through both official SDKs, unchanged: aliyun-fc2's
put/get/list_provision_config(s), and alibabacloud-fc-open20210406's with
scheduled actions and target-tracking policies.
"""

import os
import time

import fc2
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_openapi import exceptions as oa_errors
from alibabacloud_tea_openapi import utils_models as oa

HELLO = os.environ["GUEST_HELLO"]
fc = fc2.Client(endpoint=os.environ["WASMFC_ENDPOINT"], accessKeyID=os.environ["WASMFC_AK"],
                accessKeySecret=os.environ["WASMFC_SK"])
c = Client(oa.Config(access_key_id=os.environ["WASMFC_AK"], access_key_secret=os.environ["WASMFC_SK"],
                     endpoint=os.environ["WASMFC_HOSTPORT"], protocol="http", region_id="cn-hangzhou"))
S = "psvc"


def step(name):
    print("--", name, flush=True)


def wait_current(get, want, timeout=5):
    deadline = time.time() + timeout
    while True:
        cur = get()
        if cur == want:
            return
        assert time.time() < deadline, f"current {cur}, want {want}"
        time.sleep(0.05)


step("setup: service, function, version 1, alias prod")
fc.create_service(S)
fc.create_function(S, "hello", "wasm", "hello.wasm", codeZipFile=HELLO)
assert fc.publish_version(S).data["versionId"] == "1"
fc.create_alias(S, "prod", "1")

step("aliyun-fc2: put/get/list provision config")
r = fc.put_provision_config(S, "prod", "hello", 2).data
assert r["target"] == 2 and r["resource"].endswith("#psvc#prod#hello"), r
wait_current(lambda: fc.get_provision_config(S, "prod", "hello").data["current"], 2)
listed = fc.list_provision_configs(S, "prod", limit=10).data["provisionConfigs"]
assert [x["target"] for x in listed] == [2], listed
assert len(fc.list_provision_configs(None, None).data["provisionConfigs"]) == 1
r = fc.invoke_function(S, "hello", payload=b"sdk", qualifier="prod")
assert r.data == b"Hello sdk!", r.data
assert r.headers.get("X-Fc-Start-Type", r.headers.get("x-fc-start-type")) == "provisioned", r.headers
try:
    fc.put_provision_config(S, "LATEST", "hello", 1)
    raise AssertionError("LATEST was accepted")
except fc2.fc_exceptions.FcError as e:
    assert e.status_code == 400, e

step("alibabacloud-fc-open20210406: scheduled actions and target tracking")
req = m.PutProvisionConfigRequest(
    qualifier="prod", target=3, always_allocate_cpu=False,
    scheduled_actions=[m.ScheduledActions(name="a1", start_time="2023-01-01T00:00:00Z",
                                          end_time="2033-01-01T00:00:00Z", target=3,
                                          schedule_expression="cron(0 0 8 * * *)")],
    target_tracking_policies=[m.TargetTrackingPolicies(name="t1", start_time="2023-01-01T00:00:00Z",
                                                       end_time="2023-01-02T00:00:00Z",
                                                       metric_type="ProvisionedConcurrencyUtilization",
                                                       metric_target=0.6, min_capacity=1, max_capacity=10)])
body = c.put_provision_config(S, "hello", req).body
assert body.target == 3 and body.always_allocate_cpu is False, body
assert body.scheduled_actions[0].schedule_expression == "cron(0 0 8 * * *)", body
assert body.target_tracking_policies[0].metric_target == 0.6, body
wait_current(lambda: c.get_provision_config(S, "hello", m.GetProvisionConfigRequest(qualifier="prod")).body.current, 3)
got = c.list_provision_configs(m.ListProvisionConfigsRequest(service_name=S, qualifier="prod", limit=10)).body
assert got.provision_configs[0].target_tracking_policies[0].name == "t1", got
bad = m.PutProvisionConfigRequest(qualifier="prod", target=1, target_tracking_policies=[
    m.TargetTrackingPolicies(name="t", metric_type="ProvisionedConcurrencyUtilization", metric_target=2.0,
                             min_capacity=1, max_capacity=2)])
try:
    c.put_provision_config(S, "hello", bad)
    raise AssertionError("metricTarget 2.0 was accepted")
except oa_errors.ClientException as e:
    assert e.status_code == 400, (e.status_code, e.data)
    assert e.data["ErrorCode"] == "InvalidArgument", e.data

print("all checks passed")
