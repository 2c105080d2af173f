"""Both FC SDKs over https against a wasmfc serving TLS (--tls-cert,
--tls-key) with a self-signed certificate the test made.

Run by tests/tests/it/sdk.rs with WASMFC_ENDPOINT (https://...),
WASMFC_HOSTPORT, WASMFC_AK, WASMFC_SK, GUEST_HELLO and REQUESTS_CA_BUNDLE
(the certificate, which both SDKs' HTTP clients then trust) in the
environment.
"""

import os

import fc2
from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_openapi import utils_models as oa

ENDPOINT = os.environ["WASMFC_ENDPOINT"]
HOSTPORT = os.environ["WASMFC_HOSTPORT"]
AK = os.environ["WASMFC_AK"]
SK = os.environ["WASMFC_SK"]
assert ENDPOINT.startswith("https://"), ENDPOINT

old = fc2.Client(endpoint=ENDPOINT, accessKeyID=AK, accessKeySecret=SK)
old.create_service("tls")
old.create_function("tls", "hello", "wasm", "hello.wasm", codeZipFile=os.environ["GUEST_HELLO"])
assert old.invoke_function("tls", "hello", payload=b"TLS").data == b"Hello TLS!"
print("-- aliyun-fc2 over https")

# This SDK's HTTP client takes the CA from its config, not the environment.
new = Client(oa.Config(access_key_id=AK, access_key_secret=SK, endpoint=HOSTPORT,
                       protocol="https", region_id="cn-hangzhou", ca=os.environ["REQUESTS_CA_BUNDLE"]))
got = new.invoke_function("tls", "hello", m.InvokeFunctionRequest(body=b"ACS3")).body
assert got == b"Hello ACS3!", got
print("-- alibabacloud-fc-open20210406 over https")
print("all checks passed")
