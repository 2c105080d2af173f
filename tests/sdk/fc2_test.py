"""aliyun-fc2 (FC 2016-08-15) against a running wasmfc, unchanged.

Run by tests/tests/it/sdk.rs with WASMFC_ENDPOINT, WASMFC_AK, WASMFC_SK and
GUEST_* (paths of the built example guests) in the environment.
"""

import base64
import os
import shutil
import tempfile

import fc2
import requests

ENDPOINT = os.environ["WASMFC_ENDPOINT"]
AK = os.environ["WASMFC_AK"]
SK = os.environ["WASMFC_SK"]
HELLO = os.environ["GUEST_HELLO"]
ECHO = os.environ["GUEST_ECHO_WASI"]
FAIL = os.environ["GUEST_FAIL"]
TRAP = os.environ["GUEST_TRAP"]

client = fc2.Client(endpoint=ENDPOINT, accessKeyID=AK, accessKeySecret=SK)
S = "fc2svc"


def step(name):
    print("--", name, flush=True)


def expect_error(fn, status, code):
    try:
        fn()
    except fc2.FcError as e:
        assert e.status_code == status, (e.status_code, e.message)
        assert e.err_code == code, (e.err_code, e.message)
        assert e.request_id and e.request_id != "unknown", e.request_id
        return e
    raise AssertionError(f"expected FcError {status} {code}")


step("services")
r = client.create_service(S, description="from aliyun-fc2", internetAccess=False)
assert r.data["serviceName"] == S and r.data["description"] == "from aliyun-fc2", r.data
assert r.headers.get("x-fc-request-id")
assert client.get_service(S).data["internetAccess"] is False
r = client.update_service(S, description="updated")
assert r.data["description"] == "updated", r.data
client.create_service("fc2other")
names = [s["serviceName"] for s in client.list_services(prefix="fc2").data["services"]]
assert names == ["fc2other", S], names
page = client.list_services(limit=1, prefix="fc2").data
assert len(page["services"]) == 1 and page["nextToken"] == S, page
client.delete_service("fc2other")
expect_error(lambda: client.get_service("fc2other"), 404, "ServiceNotFound")
expect_error(lambda: client.create_service(S), 409, "ServiceAlreadyExists")

step("functions: raw wasm (codeZipFile) and a zipped directory (codeDir)")
r = client.create_function(S, "hello", "wasm", "hello.wasm", codeZipFile=HELLO,
                           environmentVariables={"GREETING": "Hola"}, memorySize=128, timeout=10)
assert r.data["functionName"] == "hello" and r.data["timeout"] == 10, r.data
with open(HELLO, "rb") as f:
    assert r.data["codeSize"] == len(f.read())
checksum = r.data["codeChecksum"]
d = tempfile.mkdtemp()
shutil.copy(ECHO, os.path.join(d, "echo.wasm"))
with open(os.path.join(d, "README"), "w") as f:
    f.write("packaged by codeDir")
r = client.create_function(S, "echo", "wasm", "echo.wasm", codeDir=d)
assert r.data["wasmfc"]["guestKind"] == "command", r.data
client.create_function(S, "fail", "wasm", "x", codeZipFile=FAIL)
client.create_function(S, "trap", "wasm", "x", codeZipFile=TRAP)
assert client.get_function(S, "hello").data["environmentVariables"] == {"GREETING": "Hola"}
fns = [f["functionName"] for f in client.list_functions(S).data["functions"]]
assert fns == ["echo", "fail", "hello", "trap"], fns
assert [f["functionName"] for f in client.list_functions(S, limit=2, prefix="e").data["functions"]] == ["echo"]
r = client.update_function(S, "hello", description="greeter", timeout=5)
assert r.data["description"] == "greeter" and r.data["timeout"] == 5, r.data
expect_error(lambda: client.get_function(S, "nope"), 404, "FunctionNotFound")

step("get_function_code")
code = client.get_function_code(S, "hello").data
assert code["checksum"] == checksum, code
with open(HELLO, "rb") as f:
    assert requests.get(code["url"]).content == f.read()

step("invoke_function: sync, log tail, errors")
r = client.invoke_function(S, "hello", payload=b"Madrid")
assert r.data == b"Hola Madrid!", r.data
assert r.headers["x-fc-code-checksum"] == checksum
assert "x-fc-log-result" not in r.headers
r = client.invoke_function(S, "hello", payload=b"Lima",
                           headers={"x-fc-invocation-type": "Sync", "x-fc-log-type": "Tail"})
log = base64.b64decode(r.headers["x-fc-log-result"]).decode()
assert "greeting Lima" in log, log
assert client.invoke_function(S, "echo", payload=b"raw bytes").data == b"raw bytes"
# aliyun-fc2 raises on X-Fc-Error-Type even though the status is 200.
e = expect_error(lambda: client.invoke_function(S, "fail", payload=b"x"), 200, "")
assert "boom: x" in e.message and "HandledError" in e.message, e.message
e = expect_error(lambda: client.invoke_function(S, "trap", payload=b"x"), 200, "")
assert "Trap" in e.message, e.message

step("versions and aliases")
v = client.publish_version(S, description="v1").data
assert v["versionId"] == "1", v
client.update_function(S, "hello", environmentVariables={"GREETING": "Ciao"})
assert client.list_versions(S).data["versions"][0]["versionId"] == "1"
a = client.create_alias(S, "prod", "1", description="production").data
assert a["aliasName"] == "prod" and a["versionId"] == "1", a
assert client.get_alias(S, "prod").data["description"] == "production"
assert [x["aliasName"] for x in client.list_aliases(S).data["aliases"]] == ["prod"]
r = client.invoke_function(S, "hello", payload=b"Rome", qualifier="prod")
assert r.data == b"Hola Rome!", r.data
assert r.headers["x-fc-invocation-service-version"] == "1"
assert client.invoke_function(S, "hello", payload=b"Rome").data == b"Ciao Rome!"
assert client.get_function(S, "hello", qualifier="1").data["environmentVariables"] == {"GREETING": "Hola"}
v2 = client.publish_version(S).data["versionId"]
client.update_alias(S, "prod", v2, description="moved")
assert client.invoke_function(S, "hello", payload=b"Rome", qualifier="prod").data == b"Ciao Rome!"

step("signatures")
bad = fc2.Client(endpoint=ENDPOINT, accessKeyID=AK, accessKeySecret="wrong-secret")
expect_error(lambda: bad.get_service(S), 403, "SignatureNotMatch")
expect_error(lambda: bad.invoke_function(S, "hello", payload=b"x"), 403, "SignatureNotMatch")
unknown = fc2.Client(endpoint=ENDPOINT, accessKeyID="nobody", accessKeySecret=SK)
expect_error(lambda: unknown.list_services(), 403, "InvalidAccessKeyID")
assert requests.get(ENDPOINT + "/2016-08-15/services").status_code == 403
# A refused create left nothing behind.
expect_error(lambda: bad.create_service("ghost"), 403, "SignatureNotMatch")
expect_error(lambda: client.get_service("ghost"), 404, "ServiceNotFound")

step("cleanup")
client.delete_alias(S, "prod")
client.delete_version(S, "1")
for f in ["echo", "fail", "hello", "trap"]:
    client.delete_function(S, f)
client.delete_service(S)
expect_error(lambda: client.get_service(S), 404, "ServiceNotFound")
print("aliyun-fc2: all checks passed")
