"""alibabacloud-fc-open20210406 (FC 2021-04-06, ACS3 signing) against a
running wasmfc, unchanged.

Run by tests/tests/it/sdk.rs with WASMFC_HOSTPORT, WASMFC_AK, WASMFC_SK and
GUEST_* in the environment.
"""

import base64
import os

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_openapi import exceptions as oa_errors
from alibabacloud_tea_openapi import utils_models as oa
from alibabacloud_tea_util import models as util_models
from darabonba.core import DaraCore

HOSTPORT = os.environ["WASMFC_HOSTPORT"]
AK = os.environ["WASMFC_AK"]
SK = os.environ["WASMFC_SK"]


def b64_file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def client(ak=AK, sk=SK):
    return Client(oa.Config(access_key_id=ak, access_key_secret=sk, endpoint=HOSTPORT,
                            protocol="http", region_id="cn-hangzhou"))


c = client()
runtime = util_models.RuntimeOptions()
S = "opensvc"


def step(name):
    print("--", name, flush=True)


def expect_error(fn, status, code):
    try:
        fn()
    except oa_errors.ClientException as e:
        assert e.status_code == status, (e.status_code, e.data)
        assert e.data["ErrorCode"] == code, e.data
        assert e.code == code, e.code
        return e
    raise AssertionError(f"expected ClientException {status} {code}")


step("services")
r = c.create_service(m.CreateServiceRequest(service_name=S, description="from the 2021 SDK"))
assert r.status_code == 200 and r.body.service_name == S, r.body.to_map()
assert r.headers["x-fc-request-id"]
assert c.get_service(S, m.GetServiceRequest()).body.description == "from the 2021 SDK"
r = c.update_service(S, m.UpdateServiceRequest(description="d2"))
assert r.body.description == "d2"
c.create_service(m.CreateServiceRequest(service_name="openother"))
r = c.list_services(m.ListServicesRequest(prefix="open", limit=1))
assert [s.service_name for s in r.body.services] == ["openother"] and r.body.next_token == S
c.delete_service("openother")
expect_error(lambda: c.get_service("openother", m.GetServiceRequest()), 404, "ServiceNotFound")

step("functions")
r = c.create_function(S, m.CreateFunctionRequest(
    function_name="hello", runtime="wasm", handler="hello.wasm",
    code=m.Code(zip_file=b64_file(os.environ["GUEST_HELLO"])),
    memory_size=128, timeout=30, instance_concurrency=1,
    environment_variables={"GREETING": "Hallo"}, cpu=0.25, disk_size=512))
assert r.body.function_name == "hello" and r.body.timeout == 30, r.body.to_map()
checksum = r.body.code_checksum
c.create_function(S, m.CreateFunctionRequest(
    function_name="fail", runtime="wasm", handler="h", code=m.Code(zip_file=b64_file(os.environ["GUEST_FAIL"]))))
c.create_function(S, m.CreateFunctionRequest(
    function_name="trap", runtime="wasm", handler="h", code=m.Code(zip_file=b64_file(os.environ["GUEST_TRAP"]))))
got = c.get_function(S, "hello", m.GetFunctionRequest()).body
assert got.environment_variables == {"GREETING": "Hallo"} and got.cpu == 0.25, got.to_map()
r = c.update_function(S, "hello", m.UpdateFunctionRequest(instance_concurrency=4, description="greeter"))
assert r.body.instance_concurrency == 4 and r.body.description == "greeter", r.body.to_map()
names = [f.function_name for f in c.list_functions(S, m.ListFunctionsRequest()).body.functions]
assert names == ["fail", "hello", "trap"], names
code = c.get_function_code(S, "hello", m.GetFunctionCodeRequest()).body
assert code.checksum == checksum and code.url.startswith("http://"), code.to_map()
expect_error(lambda: c.get_function(S, "nope", m.GetFunctionRequest()), 404, "FunctionNotFound")

step("invoke_function: sync, tail, errors")
r = c.invoke_function(S, "hello", m.InvokeFunctionRequest(body=b"Oslo"))
assert r.body == b"Hallo Oslo!", r.body
r = c.invoke_function_with_options(
    S, "hello", m.InvokeFunctionRequest(body=b"Bergen", qualifier="LATEST"),
    m.InvokeFunctionHeaders(x_fc_invocation_type="Sync", x_fc_log_type="Tail"), runtime)
assert r.body == b"Hallo Bergen!"
assert "greeting Bergen" in base64.b64decode(r.headers["x-fc-log-result"]).decode()
# The 2021 SDK returns function errors as the body; the header tells.
r = c.invoke_function(S, "fail", m.InvokeFunctionRequest(body=b"y"))
assert r.headers["x-fc-error-type"] == "HandledInvocationError"
assert b"boom: y" in r.body
r = c.invoke_function(S, "trap", m.InvokeFunctionRequest(body=b"y"))
assert r.headers["x-fc-error-type"] == "UnhandledInvocationError"
assert b"Trap" in r.body

step("versions and aliases")
v = c.publish_service_version(S, m.PublishServiceVersionRequest(description="v1")).body
assert v.version_id == "1", v.to_map()
c.update_function(S, "hello", m.UpdateFunctionRequest(environment_variables={"GREETING": "Hej"}))
a = c.create_alias(S, m.CreateAliasRequest(alias_name="live", version_id="1")).body
assert a.alias_name == "live", a.to_map()
assert [x.alias_name for x in c.list_aliases(S, m.ListAliasesRequest()).body.aliases] == ["live"]
r = c.invoke_function(S, "hello", m.InvokeFunctionRequest(body=b"Turku", qualifier="live"))
assert r.body == b"Hallo Turku!", r.body
assert r.headers["x-fc-invocation-service-version"] == "1"
assert c.invoke_function(S, "hello", m.InvokeFunctionRequest(body=b"Turku")).body == b"Hej Turku!"
versions = c.list_service_versions(S, m.ListServiceVersionsRequest()).body.versions
assert [x.version_id for x in versions] == ["1"]

step("signatures")
expect_error(lambda: client(sk="wrong").get_service(S, m.GetServiceRequest()), 403, "SignatureNotMatch")
expect_error(lambda: client(ak="nobody").list_services(m.ListServicesRequest()), 403, "InvalidAccessKeyID")

# A body changed after signing (in transit) is refused and changes nothing.
original = DaraCore.do_action


def tampering(request, runtime_option=None):
    if isinstance(request.body, str):
        request.body = request.body.replace("honest", "forged")
    elif request.body:
        request.body = request.body.replace(b"honest", b"forged")
    return original(request, runtime_option)


DaraCore.do_action = tampering
try:
    expect_error(lambda: c.update_service(S, m.UpdateServiceRequest(description="honest")), 403, "SignatureNotMatch")
finally:
    DaraCore.do_action = original
assert c.get_service(S, m.GetServiceRequest()).body.description == "d2"

step("cleanup")
c.delete_alias(S, "live")
c.delete_service_version(S, "1")
for f in ["fail", "hello", "trap"]:
    c.delete_function(S, f)
c.delete_service(S)
print("alibabacloud-fc-open20210406: all checks passed")
