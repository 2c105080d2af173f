//! Orchestrations through the Durable Functions instance API, over real
//! HTTP, with the example orchestrators and activities.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Reply, Server, guests};

pub(crate) const ROOT: &str = "/runtime/webhooks/durabletask";
const SVC: &str = "durable";

/// Deploys the example orchestrators and their activities.
pub(crate) async fn deploy(s: &Server) {
    s.create_service(SVC).await;
    for (name, guest) in [
        ("hello", guests::HELLO),
        ("square", guests::SQUARE),
        ("hello-sequence", guests::HELLO_SEQUENCE),
        ("approval", guests::APPROVAL),
        ("fan-out", guests::FAN_OUT),
    ] {
        s.create_function(SVC, name, guest, json!({})).await;
    }
}

pub(crate) async fn start(s: &Server, orchestrator: &str, id: &str, input: Option<Value>) -> Reply {
    let body = input.map(|v| v.to_string()).unwrap_or_default();
    s.call(
        Method::POST,
        &format!("{ROOT}/orchestrators/{orchestrator}/{id}"),
        body,
        &[("content-type", "application/json")],
    )
    .await
}

pub(crate) async fn status(s: &Server, id: &str, query: &str) -> Reply {
    s.get(&format!("{ROOT}/instances/{id}{query}")).await
}

pub(crate) async fn raise(s: &Server, id: &str, event: &str, data: Value) -> Reply {
    s.call(
        Method::POST,
        &format!("{ROOT}/instances/{id}/raiseEvent/{event}"),
        data.to_string(),
        &[("content-type", "application/json")],
    )
    .await
}

/// An empty-bodied POST under the instance API root (an operation).
async fn post(s: &Server, path: &str) -> Reply {
    s.call(Method::POST, &format!("{ROOT}{path}"), "", &[]).await
}

/// The `EventType`s of an instance's history, in order.
async fn event_types(s: &Server, id: &str) -> Vec<String> {
    let history = status(s, id, "?showHistory=true").await.json()["historyEvents"].clone();
    history
        .as_array()
        .unwrap_or_else(|| panic!("no history for {id}: {history}"))
        .iter()
        .map(|e| e["EventType"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Replaces a function's code (UpdateFunction with a new package).
async fn replace_code(s: &Server, function: &str, guest: &str) {
    let r = s
        .put_json(
            &format!("/2016-08-15/services/{SVC}/functions/{function}"),
            json!({"code": {"zipFile": wasmfc_tests::b64(&wasmfc_tests::wasm(guest))}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Polls an instance until `done(status)` holds.
pub(crate) async fn wait_until(s: &Server, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = status(s, id, "").await;
        if r.status != StatusCode::NOT_FOUND {
            let v = r.json();
            if done(&v) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("instance {id} did not get there in {timeout:?}: {v}\n{}", s.log());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn wait_status(s: &Server, id: &str, want: &str) -> Value {
    wait_until(s, id, Duration::from_secs(30), |v| v["runtimeStatus"] == want).await
}

/// Waits until the `n` approvals whose ids start with `prefix` are all
/// waiting for their approval (each has run, set its status, and armed its
/// timeout).
pub(crate) async fn wait_all_waiting(s: &Server, prefix: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = s
            .get(&format!("{ROOT}/instances?instanceIdPrefix={prefix}&top=1000"))
            .await
            .json();
        let waiting = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["customStatus"]["stage"] == "waiting for approval")
            .count();
        if waiting == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {waiting} of {n} waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every task of an activity function (tasks are how activities run).
pub(crate) async fn activity_tasks(s: &Server, function: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!(
            "/2016-08-15/services/{SVC}/functions/{function}/stateful-async-invocations?limit=100&includePayload=true"
        );
        if let Some(t) = &token {
            path.push_str(&format!("&nextToken={t}"));
        }
        let r = s.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        out.extend(v["invocations"].as_array().cloned().unwrap_or_default());
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn hello_sequence_completes_with_its_history() {
    let s = Server::default().await;
    deploy(&s).await;
    let r = start(&s, "hello-sequence", "seq-1", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let payload = r.json();
    assert_eq!(payload["id"], "seq-1");
    assert!(
        r.header("location")
            .unwrap()
            .ends_with("/instances/seq-1?taskHub=wasmfc&connection=Storage")
    );
    assert_eq!(r.header("retry-after"), Some("10"));
    for key in [
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
    ] {
        assert!(payload[key].as_str().unwrap().contains("/instances/seq-1"), "{key}");
    }

    let done = wait_status(&s, "seq-1", "Completed").await;
    assert_eq!(
        done["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
    assert_eq!(done["name"], "hello-sequence");
    assert!(done.get("historyEvents").is_none(), "history only on request: {done}");
    assert!(done["createdTime"].as_str().unwrap().ends_with('Z'));

    let r = status(&s, "seq-1", "?showHistory=true&showHistoryOutput=true").await;
    assert_eq!(r.status, StatusCode::OK);
    let events = r.json()["historyEvents"].as_array().cloned().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["EventType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "TaskCompleted",
            "TaskCompleted",
            "TaskCompleted",
            "ExecutionCompleted"
        ],
        "{events:?}"
    );
    for (e, city) in events[1..4].iter().zip(["Tokyo", "Seattle", "London"]) {
        assert_eq!(e["FunctionName"], "hello");
        assert_eq!(e["Input"], city);
        assert_eq!(e["Result"], format!("Hello {city}!"));
        assert!(e["ScheduledTime"].is_string());
    }
    assert_eq!(events[4]["OrchestrationStatus"], "Completed");
    // Without showHistoryOutput the results stay out.
    let quiet = status(&s, "seq-1", "?showHistory=true").await.json();
    assert!(quiet["historyEvents"][1].get("Result").is_none());

    // The activities ran as tasks, once per step.
    assert_eq!(activity_tasks(&s, "hello").await.len(), 3);

    // A finished id can be started again: a fresh run replaces it.
    let r = start(&s, "hello-sequence", "seq-1", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    wait_status(&s, "seq-1", "Completed").await;
    assert_eq!(activity_tasks(&s, "hello").await.len(), 6);

    // fan-out sums 1²..10² from ten parallel activities.
    let r = start(&s, "fan-out", "fan-1", Some(json!({"n": 10}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let done = wait_status(&s, "fan-1", "Completed").await;
    assert_eq!(done["output"], 385);
}

#[tokio::test]
async fn approval_waits_shows_status_times_out_and_takes_buffered_events() {
    let s = Server::default().await;
    deploy(&s).await;

    // Waits with a custom status; the event completes it.
    start(&s, "approval", "ap-1", Some(json!({"timeoutMs": 600000}))).await;
    let waiting = wait_until(&s, "ap-1", Duration::from_secs(30), |v| {
        v["customStatus"]["stage"] == "waiting for approval"
    })
    .await;
    assert_eq!(waiting["runtimeStatus"], "Running");
    let r = status(&s, "ap-1", "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "running instances answer 202");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.header("location").unwrap().contains("/instances/ap-1"));
    let r = raise(&s, "ap-1", "Approval", json!({"by": "Ann"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.body.is_empty());
    let done = wait_status(&s, "ap-1", "Completed").await;
    assert_eq!(
        done["output"],
        json!({"approved": true, "by": "Ann", "greeting": "Hello Ann!"})
    );
    assert_eq!(done["customStatus"]["stage"], "approved");

    // Without the event it times out to its fallback branch.
    start(&s, "approval", "ap-2", Some(json!({"timeoutMs": 500}))).await;
    let done = wait_status(&s, "ap-2", "Completed").await;
    assert_eq!(done["output"]["approved"], false);
    assert_eq!(done["customStatus"]["stage"], "timed out");

    // An event raised while the orchestrator is still on its durable timer,
    // before it waits, is buffered and taken at once when it does.
    start(
        &s,
        "approval",
        "ap-3",
        Some(json!({"timeoutMs": 600000, "delayMs": 1500})),
    )
    .await;
    wait_until(&s, "ap-3", Duration::from_secs(30), |v| {
        v["customStatus"]["stage"] == "preparing"
    })
    .await;
    assert_eq!(
        raise(&s, "ap-3", "Approval", json!("Bob")).await.status,
        StatusCode::ACCEPTED
    );
    let done = wait_status(&s, "ap-3", "Completed").await;
    assert_eq!(done["output"]["by"], "Bob");
    let types = event_types(&s, "ap-3").await;
    let raised = types.iter().position(|t| *t == "EventRaised").unwrap();
    let fired = types.iter().position(|t| *t == "TimerFired").unwrap();
    assert!(raised < fired, "the event arrived before the timer fired: {types:?}");
    // Buffered: the wait recorded no timeout timer of its own.
    assert_eq!(types.iter().filter(|t| **t == "TimerCreated").count(), 1, "{types:?}");
}

#[tokio::test]
async fn instance_api_errors_follow_the_spec() {
    let s = Server::default().await;
    deploy(&s).await;

    // Unknown instance: 404 with an empty body, everywhere.
    for r in [
        status(&s, "nope", "").await,
        raise(&s, "nope", "X", json!(1)).await,
        post(&s, "/instances/nope/terminate").await,
        s.delete(&format!("{ROOT}/instances/nope")).await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(r.body.is_empty());
    }
    // Unknown routes and operations: empty 404.
    let r = post(&s, "/instances/nope/bogus").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Bad starts: 400 with ExceptionMessage.
    for (orch, id) in [
        ("no-such", "x1"),
        ("hello", "x2"),
        ("approval", "@entity"),
        ("approval", "a%23b"),
    ] {
        let r = start(&s, orch, id, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{orch}/{id}: {}", r.text());
        assert!(r.json()["ExceptionMessage"].is_string());
    }
    let r = s
        .call(
            Method::POST,
            &format!("{ROOT}/orchestrators/approval/bad-json"),
            "{nope",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["Message"], "Invalid JSON content");

    // A running id cannot be started again (500, as the extension).
    start(&s, "approval", "run-1", Some(json!({"timeoutMs": 600000}))).await;
    wait_status(&s, "run-1", "Running").await;
    let r = start(&s, "approval", "run-1", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.json()["ExceptionMessage"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    // Raise event: content type, then JSON.
    let r = s
        .call(
            Method::POST,
            &format!("{ROOT}/instances/run-1/raiseEvent/Approval"),
            "x",
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["Message"],
        "Only application/json request content is supported"
    );
    let r = s
        .call(
            Method::POST,
            &format!("{ROOT}/instances/run-1/raiseEvent/Approval"),
            "{bad",
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Rewind is for Failed instances only.
    let r = post(&s, "/instances/run-1/rewind").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);

    // Suspend keeps events; resume processes them. Literal segments match
    // case-insensitively.
    let r = post(&s, "/Instances/run-1/Suspend?reason=pause%20me").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        wait_status(&s, "run-1", "Suspended").await["runtimeStatus"],
        "Suspended"
    );
    assert_eq!(
        raise(&s, "run-1", "Approval", json!("Cy")).await.status,
        StatusCode::ACCEPTED
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&s, "run-1", "").await.json()["runtimeStatus"], "Suspended");
    let r = post(&s, "/instances/run-1/resume?reason=go").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let done = wait_status(&s, "run-1", "Completed").await;
    assert_eq!(done["output"]["by"], "Cy");

    // Finished: 410 for raise, terminate, rewind.
    assert_eq!(raise(&s, "run-1", "Approval", json!(1)).await.status, StatusCode::GONE);
    for op in ["terminate", "rewind", "suspend"] {
        let r = post(&s, &format!("/instances/run-1/{op}")).await;
        assert_eq!(r.status, StatusCode::GONE, "{op}");
    }

    // Terminate: the reason becomes the output.
    start(&s, "approval", "term-1", Some(json!({"timeoutMs": 600000}))).await;
    wait_status(&s, "term-1", "Running").await;
    let r = post(&s, "/instances/term-1/terminate?reason=bye%20bye").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let done = wait_status(&s, "term-1", "Terminated").await;
    assert_eq!(done["output"], "bye bye");

    // List: filters, paging with the continuation token, trailing slash.
    let r = s
        .get(&format!("{ROOT}/instances/?runtimeStatus=Completed,Terminated&top=1"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let token = r.header("x-ms-continuation-token").unwrap().to_string();
    assert!(!token.is_empty());
    let r = s
        .call(
            Method::GET,
            &format!("{ROOT}/instances?runtimeStatus=Completed,Terminated&top=1"),
            Vec::new(),
            &[("x-ms-continuation-token", &token)],
        )
        .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(r.header("x-ms-continuation-token"), Some(""));
    let r = s.get(&format!("{ROOT}/instances?instanceIdPrefix=term-")).await.json();
    assert_eq!(r.as_array().unwrap().len(), 1);
    assert_eq!(r[0]["instanceId"], "term-1");
    assert!(r[0].get("historyEvents").is_none());

    // Purge: one, then by filter (createdTimeFrom required).
    let r = s.delete(&format!("{ROOT}/instances/term-1")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"instancesDeleted": 1}));
    assert_eq!(
        s.delete(&format!("{ROOT}/instances/term-1")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = s.delete(&format!("{ROOT}/instances")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!("Please provide value for 'createdTimeFrom' parameter."));
    let r = s
        .delete(&format!(
            "{ROOT}/instances?createdTimeFrom=2020-01-01T00:00:00Z&runtimeStatus=Completed"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["instancesDeleted"], 1);
}

#[tokio::test]
async fn rewind_reruns_only_the_failed_step() {
    let s = Server::default().await;
    deploy(&s).await;
    // `greet` is misconfigured: its code always fails.
    s.create_function(SVC, "greet", guests::FAIL, json!({})).await;
    start(
        &s,
        "hello-sequence",
        "rw-1",
        Some(json!({"activities": ["hello", "greet", "hello"]})),
    )
    .await;
    let failed = wait_status(&s, "rw-1", "Failed").await;
    assert!(failed["output"].as_str().unwrap().contains("boom"), "{failed}");
    let r = post(&s, "/instances/rw-1/terminate").await;
    assert_eq!(r.status, StatusCode::GONE);

    // Fix the function, rewind: the failed step runs again, nothing else.
    replace_code(&s, "greet", guests::HELLO).await;
    let r = post(&s, "/instances/rw-1/rewind?reason=fixed+it").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let done = wait_status(&s, "rw-1", "Completed").await;
    assert_eq!(
        done["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
    let hello = activity_tasks(&s, "hello").await;
    let inputs: Vec<&str> = hello.iter().map(|t| t["invocationPayload"].as_str().unwrap()).collect();
    assert_eq!(hello.len(), 2, "Tokyo ran once, London once: {inputs:?}");
    let greet = activity_tasks(&s, "greet").await;
    let states: Vec<&str> = greet.iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(greet.len(), 2, "{states:?}");
    assert!(
        states.contains(&"Failed") && states.contains(&"Succeeded"),
        "{states:?}"
    );
    let types = event_types(&s, "rw-1").await;
    assert!(
        types.iter().any(|t| t == "ExecutionRewound") && types.iter().any(|t| t == "GenericEvent"),
        "{types:?}"
    );
}

#[tokio::test]
async fn a_retry_policy_reruns_a_failing_activity_before_failing_the_instance() {
    let s = Server::default().await;
    deploy(&s).await;
    s.create_function(SVC, "greet", guests::FAIL, json!({})).await;
    start(
        &s,
        "hello-sequence",
        "retry-1",
        Some(json!({"activities": ["hello", "greet", "hello"], "attempts": 3})),
    )
    .await;
    let failed = wait_status(&s, "retry-1", "Failed").await;
    assert!(failed["output"].as_str().unwrap().contains("boom"), "{failed}");
    let greet = activity_tasks(&s, "greet").await;
    assert_eq!(greet.len(), 3, "three attempts: {greet:?}");
    assert!(greet.iter().all(|t| t["status"] == "Failed"));
    // Each attempt is its own TaskScheduled; the failure is recorded once.
    let types = event_types(&s, "retry-1").await;
    let failures = types.iter().filter(|t| *t == "TaskFailed").count();
    assert_eq!(failures, 1, "{types:?}");
}

#[tokio::test]
async fn instances_stay_on_the_code_they_started_with() {
    let s = Server::default().await;
    deploy(&s).await;
    start(&s, "approval", "pin-1", Some(json!({"timeoutMs": 600000}))).await;
    wait_status(&s, "pin-1", "Running").await;
    // New code under the same name: a different orchestrator altogether.
    replace_code(&s, "approval", guests::HELLO_SEQUENCE).await;
    raise(&s, "pin-1", "Approval", json!("Dee")).await;
    let done = wait_status(&s, "pin-1", "Completed").await;
    assert_eq!(
        done["output"]["greeting"], "Hello Dee!",
        "finished on the old code: {done}"
    );
    start(&s, "approval", "pin-2", None).await;
    let done = wait_status(&s, "pin-2", "Completed").await;
    assert_eq!(
        done["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
}

#[tokio::test]
async fn waiting_orchestrations_survive_kill_9_and_run_each_activity_once() {
    const N: usize = 100;
    let mut s = Server::default().await;
    deploy(&s).await;
    for i in 0..N {
        let r = start(
            &s,
            "approval",
            &format!("crash-{i:03}"),
            Some(json!({"timeoutMs": 600000})),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    wait_all_waiting(&s, "crash-", N).await;
    s.kill9();
    s.start_again().await;
    for i in 0..N {
        let r = raise(
            &s,
            &format!("crash-{i:03}"),
            "Approval",
            json!({"by": format!("approver-{i}")}),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    for i in 0..N {
        let done = wait_status(&s, &format!("crash-{i:03}"), "Completed").await;
        assert_eq!(done["output"]["greeting"], format!("Hello approver-{i}!"), "{done}");
    }
    // Exactly one `hello` activity per instance, each run once.
    let tasks = activity_tasks(&s, "hello").await;
    assert_eq!(tasks.len(), N);
    let mut payloads: Vec<String> = tasks
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "Succeeded", "{t}");
            t["invocationPayload"].as_str().unwrap().to_string()
        })
        .collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), N, "one distinct approver per instance");
}

/// Runs `wasmfc orchestrations …` against `s`; returns (success, output).
async fn cli(s: &Server, args: &[&str]) -> (bool, String) {
    s.cli(&[&["orchestrations"], args].concat()).await
}

#[tokio::test]
async fn the_cli_drives_instances() {
    let s = Server::default().await;
    deploy(&s).await;
    let (ok, out) = cli(&s, &["start", "hello-sequence", "--id", "cli-1", "--wait", "10"]).await;
    assert!(ok && out.contains("Hello London!"), "{out}");
    let (ok, out) = cli(
        &s,
        &[
            "start",
            "approval",
            "--id",
            "cli-2",
            "--input",
            r#"{"timeoutMs":600000}"#,
        ],
    )
    .await;
    assert!(ok && out.contains("started cli-2"), "{out}");
    wait_status(&s, "cli-2", "Running").await;
    let (ok, _) = cli(&s, &["raise", "cli-2", "Approval", r#""Eve""#]).await;
    assert!(ok);
    let done = wait_status(&s, "cli-2", "Completed").await;
    assert_eq!(done["output"]["by"], "Eve");
    let (ok, out) = cli(&s, &["--json", "list", "--status", "Completed"]).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let (ok, out) = cli(&s, &["status", "cli-1", "--history"]).await;
    assert!(ok && out.contains("TaskCompleted"), "{out}");
    let (ok, _) = cli(&s, &["terminate", "cli-1"]).await;
    assert!(!ok, "terminating a finished instance fails");
    let (ok, out) = cli(&s, &["purge", "cli-1"]).await;
    assert!(ok && out.contains("instances deleted: 1"), "{out}");
}

#[tokio::test]
async fn continue_as_new_and_restart() {
    let s = Server::default().await;
    deploy(&s).await;
    // Three rounds of 1²+2²+3², each round a new generation.
    start(&s, "fan-out", "eternal", Some(json!({"n": 3, "rounds": 3}))).await;
    let done = wait_status(&s, "eternal", "Completed").await;
    assert_eq!(done["output"], 42);
    assert_eq!(
        done["input"],
        json!({"n": 3, "rounds": 1, "carry": 28}),
        "the last generation's input"
    );
    let types = event_types(&s, "eternal").await;
    let completed = types.iter().filter(|t| *t == "TaskCompleted").count();
    assert_eq!(completed, 3, "only the last generation's history is kept: {types:?}");

    // Restart with the same id runs afresh on the instance's input...
    let r = post(&s, "/instances/eternal/restart?restartWithNewInstanceId=false").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["id"], "eternal");
    assert_eq!(wait_status(&s, "eternal", "Completed").await["output"], 42);
    // ...and with a new id by default.
    let r = post(&s, "/instances/eternal/restart").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let new_id = r.json()["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, "eternal");
    assert_eq!(new_id.len(), 32, "a GUID in N format");
    assert_eq!(wait_status(&s, &new_id, "Completed").await["output"], 42);
    let r = post(&s, "/instances/nope/restart").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
