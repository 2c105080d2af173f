"""HTTP functions through both official SDKs, unchanged: aliyun-fc2's
create/get/list/update/delete_trigger and do_http_request (signed, variant
(b) of the FC scheme), and alibabacloud-fc-open20210406's create_trigger
(triggerConfig as a JSON string), invoke_httptrigger (signed, variant (c))
and invoke_anonymous_httptrigger.
"""

import json
import os

import fc2
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_openapi import utils_models as oa

HTTP_HELLO = os.environ["GUEST_HTTP_HELLO"]
ENDPOINT = os.environ["WASMFC_ENDPOINT"]
fc = fc2.Client(endpoint=ENDPOINT, accessKeyID=os.environ["WASMFC_AK"],
                accessKeySecret=os.environ["WASMFC_SK"])
c = Client(oa.Config(access_key_id=os.environ["WASMFC_AK"], access_key_secret=os.environ["WASMFC_SK"],
                     endpoint=os.environ["WASMFC_HOSTPORT"], protocol="http", region_id="cn-hangzhou"))
S = "websvc"


def step(name):
    print("--", name, flush=True)


step("setup: an HTTP function")
fc.create_service(S)
fc.create_function(S, "web", "wasm", "web.wasm", codeZipFile=HTTP_HELLO)
assert fc.get_function(S, "web").data["wasmfc"]["guestKind"] == "http-component"

step("aliyun-fc2: trigger CRUD")
t = fc.create_trigger(S, "web", "signed", "http", {"authType": "function", "methods": ["GET", "POST"]},
                      None, None, qualifier="LATEST", description="signed trigger").data
assert t["triggerName"] == "signed" and t["triggerConfig"]["authType"] == "function", t
assert fc.get_trigger(S, "web", "signed").data["description"] == "signed trigger"
names = [x["triggerName"] for x in fc.list_triggers(S, "web").data["triggers"]]
assert names == ["signed"], names
u = fc.update_trigger(S, "web", "signed", triggerConfig={"authType": "function", "methods": ["GET", "POST", "PUT"]}).data
assert u["triggerConfig"]["methods"] == ["GET", "POST", "PUT"], u

step("aliyun-fc2: do_http_request, signed, with a query and a body")
r = fc.do_http_request("POST", S, "web", "/a/b c", headers={"x-fc-foo": "bar", "content-type": "text/plain"},
                       params={"z": "1", "a": ["2", "3"], "sp ace": "v w"}, body=b"httpbody")
assert r.status_code == 200, (r.status_code, r.text)
got = r.json()
assert got["method"] == "POST" and got["path"] == "/a/b%20c", got
assert "z=1" in got["query"] and "a=2" in got["query"] and "a=3" in got["query"], got
assert r.headers["x-wasmfc-guest"] == "http-hello"
r = fc.do_http_request("GET", S, "web", "", headers={"content-type": "application/json"})
assert r.status_code == 200 and r.json()["path"] == "/", (r.status_code, r.text)
r = fc.do_http_request("DELETE", S, "web", "/x", headers={"content-type": "application/json"})
assert r.status_code == 405, (r.status_code, r.text)

step("alibabacloud-fc-open20210406: create_trigger with a JSON-string config, invoke_httptrigger")
fc.delete_trigger(S, "web", "signed")
c.create_trigger(S, "web", m.CreateTriggerRequest(
    trigger_name="h1", trigger_type="http", qualifier="LATEST",
    trigger_config=json.dumps({"authType": "function", "methods": ["GET", "POST"]})))
url = "%s/2016-08-15/proxy/%s/web/x/y?b=2&a=1" % (ENDPOINT, S)
r = c.invoke_httptrigger(url, "POST", b"hello", {"Content-Type": "text/plain"})
assert r.status_code == 200, (r.status_code, r.text)
got = r.json()
assert got["path"] == "/x/y" and got["query"] == "b=2&a=1", got
r = c.invoke_anonymous_httptrigger(url, "POST", b"hello", {"Content-Type": "text/plain"})
assert r.status_code == 401, (r.status_code, r.text)

step("anonymous trigger: no signature needed")
c.update_trigger(S, "web", "h1", m.UpdateTriggerRequest(
    trigger_config=json.dumps({"authType": "anonymous", "methods": ["GET"]})))
r = c.invoke_anonymous_httptrigger(url, "GET", b"", {})
assert r.status_code == 200, (r.status_code, r.text)
assert r.json()["method"] == "GET"

print("all checks passed")
