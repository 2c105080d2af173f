"""ListInstances through alibabacloud-fc-open20210406, unchanged: the live
instances of a function, filtered by qualifier and by instance ids.
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
S = "oinst"


def step(name):
    print("--", name, flush=True)


def b64_file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def instances(fn, **kw):
    r = c.list_instances_with_options(S, fn, m.ListInstancesRequest(**kw), m.ListInstancesHeaders(), runtime)
    return r.body.instances or []


step("setup")
c.create_service(m.CreateServiceRequest(service_name=S))
c.create_function(S, m.CreateFunctionRequest(function_name="hello", runtime="wasm", handler="h", timeout=10,
                                             code=m.Code(zip_file=b64_file(os.environ["GUEST_HELLO"]))))

step("no instances before the first invocation")
assert instances("hello") == [], instances("hello")

step("an invocation leaves one warm instance, on LATEST")
for _ in range(2):
    c.invoke_function(S, "hello", m.InvokeFunctionRequest(body=b"sdk"))
live = instances("hello")
assert len(live) == 1, [i.to_map() for i in live]
assert live[0].version_id == "LATEST", live[0].to_map()
first = live[0].instance_id
assert first, live[0].to_map()

step("qualifier: a published version's instances only")
v = c.publish_service_version(S, m.PublishServiceVersionRequest()).body.version_id
assert instances("hello", qualifier=v) == [], "no instance of version " + v
c.invoke_function_with_options(S, "hello", m.InvokeFunctionRequest(body=b"v", qualifier=v),
                               m.InvokeFunctionHeaders(), runtime)
on_v = instances("hello", qualifier=v)
assert [i.version_id for i in on_v] == [v], [i.to_map() for i in on_v]
assert len(instances("hello")) == 2, [i.to_map() for i in instances("hello")]

step("instanceIds and limit")
only = instances("hello", instance_ids=[first])
assert [i.instance_id for i in only] == [first], [i.to_map() for i in only]
assert len(instances("hello", limit=1)) == 1

step("an unknown function is a 404")
try:
    instances("nope")
    raise AssertionError("listed instances of a missing function")
except oa_errors.ClientException as e:
    assert e.status_code == 404, e

print("all checks passed")
