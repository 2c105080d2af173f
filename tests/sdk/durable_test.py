"""Orchestrations through the real `azure-functions-durable` client (PyPI),
unchanged: it is given a durableClient binding whose rpcBaseUrl points at
wasmfc, as the Functions host would give it the extension's. Functions are
deployed with aliyun-fc2.

Covers start_new with an id, get_status with history, get_status_by with
filters, raise_event, wait_for_completion_or_create_check_status_response
(completed and timed-out), terminate, rewind, purge_instance_history.
"""

import asyncio
import json
import os
from datetime import datetime, timedelta

import azure.functions as func
import fc2
from azure.durable_functions import DurableOrchestrationClient, OrchestrationRuntimeStatus

ENDPOINT = os.environ["WASMFC_ENDPOINT"]
S = "pydurable"
fc = fc2.Client(endpoint=ENDPOINT, accessKeyID="unused", accessKeySecret="unused")


def step(name):
    print("--", name, flush=True)


def binding(root):
    base = ENDPOINT + root
    q = "taskHub=wasmfc&connection=Storage"
    inst = base + "/instances/INSTANCEID"
    return json.dumps({
        "taskHubName": "wasmfc",
        "creationUrls": {
            "createNewInstancePostUri": base + "/orchestrators/{functionName}[/{instanceId}]?" + q,
            "createAndWaitOnNewInstancePostUri": base + "/orchestrators/{functionName}[/{instanceId}]"
                                                 "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&" + q,
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": inst + "?" + q,
            "sendEventPostUri": inst + "/raiseEvent/{eventName}?" + q,
            "terminatePostUri": inst + "/terminate?reason={text}&" + q,
            "rewindPostUri": inst + "/rewind?reason={text}&" + q,
            "purgeHistoryDeleteUri": inst + "?" + q,
            "restartPostUri": inst + "/restart?" + q,
            "suspendPostUri": inst + "/suspend?reason={text}&" + q,
            "resumePostUri": inst + "/resume?reason={text}&" + q,
        },
        "baseUrl": base,
        "requiredQueryStringParameters": "",
        "rpcBaseUrl": base + "/",
    })


async def wait_for(client, instance_id, status, timeout=30.0):
    deadline = asyncio.get_event_loop().time() + timeout
    while True:
        s = await client.get_status(instance_id)
        if s and s.runtime_status == status:
            return s
        assert asyncio.get_event_loop().time() < deadline, f"{instance_id}: {s.to_json() if s else None}"
        await asyncio.sleep(0.05)


async def main():
    step("setup: orchestrators and activities with aliyun-fc2")
    fc.create_service(S)
    for name, env in [("hello", "GUEST_HELLO"), ("hello-sequence", "GUEST_HELLO_SEQUENCE"),
                      ("approval", "GUEST_APPROVAL"), ("greet", "GUEST_FAIL")]:
        fc.create_function(S, name, "wasm", "index.handler", codeZipFile=os.environ[env])
    assert fc.get_function(S, "approval").data["wasmfc"]["guestKind"] == "orchestrator"

    # The public root and the RPC root serve the same API.
    for root in ["/runtime/webhooks/durabletask", "/durabletask"]:
        client = DurableOrchestrationClient(binding(root))
        tag = "rpc" if root == "/durabletask" else "pub"

        step(f"[{tag}] start_new with an id; get_status with history")
        iid = await client.start_new("hello-sequence", f"py-seq-{tag}", None)
        assert iid == f"py-seq-{tag}", iid
        await wait_for(client, iid, OrchestrationRuntimeStatus.Completed)
        s = await client.get_status(iid, show_history=True, show_history_output=True)
        assert s.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], s.output
        assert s.name == "hello-sequence" and s.created_time is not None
        # The extension names the key `historyEvents`; the client keeps it as
        # an extra attribute of that name (its own `history` stays None).
        history = s.historyEvents
        kinds = [e["EventType"] for e in history]
        assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted", kinds
        assert [e["Result"] for e in history if e["EventType"] == "TaskCompleted"] == s.output
        missing = await client.get_status("no-such-instance")
        assert not missing

        step(f"[{tag}] raise_event completes a waiting approval; custom status while it waits")
        aid = await client.start_new("approval", f"py-ap-{tag}", {"timeoutMs": 600000})
        s = await wait_for(client, aid, OrchestrationRuntimeStatus.Running)
        for _ in range(100):
            if s.custom_status:
                break
            await asyncio.sleep(0.05)
            s = await client.get_status(aid)
        assert s.custom_status["stage"] == "waiting for approval", s.custom_status
        # The client double-encodes: the input is a JSON string holding JSON.
        assert json.loads(s.input_) == {"timeoutMs": 600000}, s.input_
        await client.raise_event(aid, "Approval", {"by": "Py"})
        req = func.HttpRequest(method="GET", url="http://127.0.0.1:7071/api/start", body=b"")
        resp = await client.wait_for_completion_or_create_check_status_response(req, aid, 10000, 100)
        assert resp.status_code == 200, (resp.status_code, resp.get_body())
        assert json.loads(resp.get_body()) == {"approved": True, "by": "Py", "greeting": "Hello Py!"}

        step(f"[{tag}] wait_for_completion_or_create_check_status_response times out with 202")
        wid = await client.start_new("approval", f"py-wait-{tag}", {"timeoutMs": 600000})
        resp = await client.wait_for_completion_or_create_check_status_response(req, wid, 500, 100)
        assert resp.status_code == 202, resp.status_code
        body = json.loads(resp.get_body())
        assert body["id"] == wid and wid in body["statusQueryGetUri"], body

        step(f"[{tag}] get_status_by filters")
        since = datetime.utcnow() - timedelta(minutes=5)
        running = await client.get_status_by(created_time_from=since,
                                             runtime_status=[OrchestrationRuntimeStatus.Running],
                                             instance_id_prefix=f"py-wait-{tag}")
        assert [r.instance_id for r in running] == [wid], [r.to_json() for r in running]
        done = await client.get_status_by(created_time_from=since, created_time_to=datetime.utcnow() + timedelta(minutes=1),
                                          runtime_status=[OrchestrationRuntimeStatus.Completed])
        assert {f"py-seq-{tag}", f"py-ap-{tag}"} <= {r.instance_id for r in done}

        step(f"[{tag}] terminate (and again: 410, no exception)")
        await client.terminate(wid, "bye bye & done")
        s = await wait_for(client, wid, OrchestrationRuntimeStatus.Terminated)
        assert s.output == "bye bye & done", s.output
        await client.terminate(wid, "again")

        step(f"[{tag}] rewind a failed instance after fixing its function")
        fc.update_function(S, "greet", codeZipFile=os.environ["GUEST_FAIL"])
        rid = await client.start_new("hello-sequence", f"py-rw-{tag}", {"activities": ["hello", "greet", "hello"]})
        await wait_for(client, rid, OrchestrationRuntimeStatus.Failed)
        fc.update_function(S, "greet", codeZipFile=os.environ["GUEST_HELLO"])
        await client.rewind(rid, "fixed it please")
        s = await wait_for(client, rid, OrchestrationRuntimeStatus.Completed)
        assert s.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], s.output
        try:
            await client.rewind(rid, "not failed")
            raise AssertionError("rewinding a completed instance must raise")
        except Exception as e:  # the client raises on 410
            assert "only supported on failed" in str(e), e

        step(f"[{tag}] purge_instance_history")
        r = await client.purge_instance_history(iid)
        assert r.instances_deleted == 1, r.instances_deleted
        r = await client.purge_instance_history(iid)
        assert r.instances_deleted == 0
        assert not await client.get_status(iid)

    print("all checks passed")


asyncio.run(main())
