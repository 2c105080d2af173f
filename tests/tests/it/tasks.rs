//! Task mode: every state, listing, dedup, destinations, re-run and logs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Server, ServerOptions, guests};

const S: &str = "jobs";
const SECS: fn(u64) -> Duration = Duration::from_secs;

fn statuses(task: &Value) -> Vec<String> {
    task["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect()
}

async fn server(args: &[&str]) -> Server {
    let mut opts = ServerOptions::default();
    for a in args {
        opts = opts.arg(*a);
    }
    let s = Server::start(opts).await;
    s.create_service(S).await;
    s
}

#[tokio::test]
async fn succeeded_with_full_history_and_result() {
    let s = server(&[]).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 10 }))
        .await;
    s.task_mode(S, "sleep", json!({})).await;
    let r = s.invoke_async(S, "sleep", "20", Some("ok-1")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("x-fc-stateful-async-invocation-id"), Some("ok-1"));
    let request_id = r.header("x-fc-request-id").unwrap().to_string();
    let t = s.wait_status(S, "sleep", "ok-1", "Succeeded", SECS(10)).await;
    assert_eq!(statuses(&t), ["Enqueued", "Dequeued", "Running", "Succeeded"]);
    assert_eq!(t["returnPayload"], "slept 20 ms");
    assert_eq!(t["invocationPayload"], "20");
    assert_eq!(t["requestId"], request_id.as_str());
    assert_eq!(t["alreadyRetriedTimes"], 0);
    assert!(t["endTime"].as_i64().unwrap() >= t["startedTime"].as_i64().unwrap());
    assert!(t["instanceId"].as_str().unwrap().starts_with("inst-"));
    // A generated id when the caller gives none.
    let r = s.invoke_async(S, "sleep", "1", None).await;
    let id = r.header("x-fc-stateful-async-invocation-id").unwrap().to_string();
    s.wait_status(S, "sleep", &id, "Succeeded", SECS(10)).await;
    // The captured log is kept with the task.
    let logs = s
        .get(&format!(
            "/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations/ok-1/logs"
        ))
        .await
        .json();
    assert!(logs["logs"].as_str().unwrap().contains("sleep: 20 ms"), "{logs}");
}

#[tokio::test]
async fn failed_after_exactly_max_retries_visible_as_retrying() {
    let s = server(&["--retry-base-delay-ms", "300"]).await;
    s.create_function(S, "fail", guests::FAIL, json!({})).await;
    s.task_mode(S, "fail", json!({ "maxAsyncRetryAttempts": 2 })).await;
    s.invoke_async(S, "fail", "x", Some("f-1")).await;
    let t = s.wait_status(S, "fail", "f-1", "Retrying", SECS(10)).await;
    assert!(t["alreadyRetriedTimes"].as_u64().unwrap() >= 1);
    let t = s.wait_status(S, "fail", "f-1", "Failed", SECS(20)).await;
    assert_eq!(t["alreadyRetriedTimes"], 2);
    assert_eq!(t["invocationErrorMessage"], "boom: x");
    let history = statuses(&t);
    assert_eq!(
        history,
        [
            "Enqueued", "Dequeued", "Running", "Retrying", "Running", "Retrying", "Running", "Failed"
        ]
    );
    // Zero retries fails on the first error.
    s.task_mode(S, "fail", json!({ "maxAsyncRetryAttempts": 0 })).await;
    s.invoke_async(S, "fail", "y", Some("f-2")).await;
    let t = s.wait_status(S, "fail", "f-2", "Failed", SECS(10)).await;
    assert_eq!(t["alreadyRetriedTimes"], 0);
}

async fn stop_and_time(s: &Server, function: &str, id: &str) -> Duration {
    s.wait_status(S, function, id, "Running", SECS(10)).await;
    // Let the guest get properly into its loop or its sleep.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let r = s
        .call(
            Method::PUT,
            &format!("/2016-08-15/services/{S}/functions/{function}/stateful-async-invocations/{id}"),
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = s.wait_status(S, function, id, "Stopped", SECS(5)).await;
    let took = started.elapsed();
    let history = statuses(&t);
    assert_eq!(history[history.len() - 2..], ["Stopping", "Stopped"], "{history:?}");
    took
}

#[tokio::test]
async fn stop_interrupts_cpu_bound_and_sleeping_guests() {
    let s = server(&[]).await;
    s.create_function(S, "spin", guests::SPIN, json!({ "timeout": 60 }))
        .await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s.task_mode(S, "spin", json!({})).await;
    s.task_mode(S, "sleep", json!({})).await;
    s.invoke_async(S, "spin", "", Some("cpu")).await;
    s.invoke_async(S, "sleep", "30000", Some("nap")).await;
    let cpu = stop_and_time(&s, "spin", "cpu").await;
    let nap = stop_and_time(&s, "sleep", "nap").await;
    // Both would run for a minute unstopped; how fast Stop is belongs to
    // `wasmfc bench tasks`, not to a test on a shared machine.
    assert!(cpu < Duration::from_secs(30), "CPU-bound guest took {cpu:?} to stop");
    assert!(nap < Duration::from_secs(30), "sleeping guest took {nap:?} to stop");

    // Stopping a queued task stops it without running it.
    let s2 = server(&["--task-concurrency", "1"]).await;
    s2.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s2.task_mode(S, "sleep", json!({})).await;
    s2.invoke_async(S, "sleep", "3000", Some("first")).await;
    s2.wait_status(S, "sleep", "first", "Running", SECS(10)).await;
    s2.invoke_async(S, "sleep", "10", Some("queued")).await;
    assert_eq!(s2.task(S, "sleep", "queued").await["status"], "Enqueued");
    let r = s2
        .call(
            Method::PUT,
            &format!("/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations/queued"),
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = s2.task(S, "sleep", "queued").await;
    assert_eq!(statuses(&t), ["Enqueued", "Stopped"]);
    // Stopping a finished task is an error.
    let r = s2
        .call(
            Method::PUT,
            &format!("/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations/queued"),
            Vec::new(),
            &[],
        )
        .await;
    r.assert_error(400, "StatefulAsyncInvocationAlreadyCompleted");
    let r = s2
        .call(
            Method::PUT,
            &format!("/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations/nope"),
            Vec::new(),
            &[],
        )
        .await;
    r.assert_error(404, "StatefulAsyncInvocationNotFound");
}

#[tokio::test]
async fn enqueued_and_dequeued_are_observable_under_limits() {
    // Three tasks in flight, one instance for the function: one runs, two
    // wait for the instance (Dequeued), the rest wait in the queue.
    let s = server(&["--task-concurrency", "3", "--max-instances-per-function", "1"]).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s.task_mode(S, "sleep", json!({})).await;
    for i in 0..5 {
        s.invoke_async(S, "sleep", "1500", Some(&format!("q{i}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = |status: &'static str| {
        let s = &s;
        async move {
            s.get(&format!(
                "/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations?status={status}"
            ))
            .await
            .json()["invocations"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(list("Running").await, 1);
    assert_eq!(list("Dequeued").await, 2);
    assert_eq!(list("Enqueued").await, 2);
    for i in 0..5 {
        s.wait_status(S, "sleep", &format!("q{i}"), "Succeeded", SECS(30)).await;
    }
}

#[tokio::test]
async fn expired_when_older_than_max_event_age() {
    let s = server(&["--task-concurrency", "1"]).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s.task_mode(S, "sleep", json!({ "maxAsyncEventAgeInSeconds": 1 })).await;
    s.invoke_async(S, "sleep", "2200", Some("long")).await;
    s.wait_status(S, "sleep", "long", "Running", SECS(10)).await;
    s.invoke_async(S, "sleep", "10", Some("late")).await;
    let t = s.wait_status(S, "sleep", "late", "Expired", SECS(10)).await;
    assert_eq!(statuses(&t), ["Enqueued", "Expired"]);
    s.wait_status(S, "sleep", "long", "Succeeded", SECS(10)).await;
}

#[tokio::test]
async fn deleting_the_function_invalidates_waiting_tasks_which_stay_readable() {
    let s = server(&["--task-concurrency", "1"]).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s.task_mode(S, "sleep", json!({})).await;
    s.invoke_async(S, "sleep", "5000", Some("run")).await;
    s.wait_status(S, "sleep", "run", "Running", SECS(10)).await;
    for i in 0..3 {
        s.invoke_async(S, "sleep", "10", Some(&format!("wait{i}"))).await;
    }
    let r = s.delete(&format!("/2016-08-15/services/{S}/functions/sleep")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for id in ["run", "wait0", "wait1", "wait2"] {
        let t = s.wait_status(S, "sleep", id, "Invalid", SECS(5)).await;
        assert_eq!(statuses(&t).last().unwrap(), "Invalid");
    }
    let list = s
        .get(&format!(
            "/2016-08-15/services/{S}/functions/sleep/stateful-async-invocations"
        ))
        .await
        .json();
    assert_eq!(list["invocations"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn ids_are_validated_and_deduplicated_and_payloads_limited() {
    let s = server(&[]).await;
    s.create_function(S, "hello", guests::HELLO, json!({})).await;
    s.task_mode(S, "hello", json!({})).await;
    assert_eq!(
        s.invoke_async(S, "hello", "a", Some("same")).await.status,
        StatusCode::ACCEPTED
    );
    s.invoke_async(S, "hello", "b", Some("same"))
        .await
        .assert_error(409, "StatefulAsyncInvocationAlreadyExists");
    let long = "x".repeat(129);
    for bad in ["9lives", long.as_str(), "a/b", "has space"] {
        s.invoke_async(S, "hello", "c", Some(bad))
            .await
            .assert_error(400, "InvalidArgument");
    }
    // An empty id header is an explicit empty id: refused as well.
    let r = s
        .call(
            Method::POST,
            &format!("/2016-08-15/services/{S}/functions/hello/invocations"),
            "d",
            &[
                ("x-fc-invocation-type", "Async"),
                ("x-fc-stateful-async-invocation-id", ""),
            ],
        )
        .await;
    r.assert_error(400, "InvalidArgument");
    assert_eq!(
        s.invoke_async(S, "hello", "e", Some(&"y".repeat(128))).await.status,
        StatusCode::ACCEPTED
    );
    // Async payloads are limited to 128 KB.
    s.invoke_async(S, "hello", vec![b'z'; 128 * 1024 + 1], None)
        .await
        .assert_error(413, "EntityTooLarge");
    // Nothing was stored for the refused ones.
    let all = s
        .get(&format!(
            "/2016-08-15/services/{S}/functions/hello/stateful-async-invocations"
        ))
        .await
        .json();
    assert_eq!(all["invocations"].as_array().unwrap().len(), 2);
}

async fn walk(s: &Server, query: &str, mut during: impl FnMut(usize)) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/2016-08-15/services/{S}/functions/hello/stateful-async-invocations?limit=50&{query}");
        if let Some(t) = &token {
            path.push_str(&format!("&nextToken={t}"));
        }
        let page = s.get(&path).await.json();
        let items = page["invocations"].as_array().unwrap();
        assert!(items.len() <= 50);
        ids.extend(items.iter().map(|t| t["invocationId"].as_str().unwrap().to_string()));
        pages += 1;
        during(pages);
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    ids
}

#[tokio::test]
async fn listing_filters_sorts_and_pages_without_gaps() {
    let s = server(&[]).await;
    s.create_function(S, "hello", guests::HELLO, json!({})).await;
    s.task_mode(S, "hello", json!({})).await;
    let before = wasmfc_tests_now_ms();
    let submits = (0..250).map(|i| {
        let s = &s;
        async move {
            let id = format!("{}-{i:03}", if i % 2 == 0 { "even" } else { "odd" });
            let r = s.invoke_async(S, "hello", format!("n{i}"), Some(&id)).await;
            assert_eq!(r.status, StatusCode::ACCEPTED);
        }
    });
    futures::future::join_all(submits).await;
    let after = wasmfc_tests_now_ms();

    // 250 tasks in pages of 50, both orders, while more tasks arrive.
    let mut added = 0;
    let asc = walk(&s, "sortOrderByTime=asc", |_| added += 1).await;
    let desc = walk(&s, "sortOrderByTime=desc", |_| {}).await;
    for ids in [&asc, &desc] {
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicates in a walk");
        assert_eq!(ids.len(), 250, "gaps or extras in a walk");
    }
    let mut rev = desc.clone();
    rev.reverse();
    assert_eq!(asc, rev, "asc and desc disagree");

    // Paging stays stable while tasks are added between pages.
    let mut extra = 0;
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let mut path =
            format!("/2016-08-15/services/{S}/functions/hello/stateful-async-invocations?limit=50&sortOrderByTime=asc");
        if let Some(t) = &token {
            path.push_str(&format!("&nextToken={t}"));
        }
        let page = s.get(&path).await.json();
        seen.extend(
            page["invocations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["invocationId"].as_str().unwrap().to_string()),
        );
        s.invoke_async(S, "hello", "late", Some(&format!("late-{extra}"))).await;
        extra += 1;
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let originals: Vec<_> = seen.iter().filter(|i| !i.starts_with("late")).collect();
    assert_eq!(originals.len(), 250);
    assert_eq!(originals.iter().collect::<HashSet<_>>().len(), 250);

    // Prefix, status, time range.
    let q = |query: String| {
        let s = &s;
        async move {
            s.get(&format!(
                "/2016-08-15/services/{S}/functions/hello/stateful-async-invocations?limit=100&{query}"
            ))
            .await
            .json()["invocations"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let odd = q("invocationIdPrefix=odd".into()).await;
    assert_eq!(odd.len(), 100);
    assert!(
        odd.iter()
            .all(|t| t["invocationId"].as_str().unwrap().starts_with("odd"))
    );
    assert_eq!(q("invocationIdPrefix=odd-12".into()).await.len(), 5);
    assert!(
        q(format!(
            "startedTimeBegin={before}&startedTimeEnd={after}&invocationIdPrefix=even"
        ))
        .await
        .len()
            == 100
    );
    assert!(q(format!("startedTimeEnd={}", before - 1)).await.is_empty());
    let bad = s
        .get(&format!(
            "/2016-08-15/services/{S}/functions/hello/stateful-async-invocations?status=Bogus"
        ))
        .await;
    bad.assert_error(400, "InvalidArgument");
    // Everything finishes; the status filter sees them.
    let deadline = Instant::now() + SECS(30);
    while q("status=Succeeded&invocationIdPrefix=even".into()).await.len() < 100 {
        assert!(Instant::now() < deadline, "tasks did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // includePayload toggles invocationPayload.
    s.wait_status(S, "hello", "odd-001", "Succeeded", SECS(30)).await;
    let with = q("includePayload=true&invocationIdPrefix=odd-001".into()).await;
    assert_eq!(with[0]["invocationPayload"], "n1");
    let with_py = q("includePayload=True&invocationIdPrefix=odd-001".into()).await;
    assert_eq!(with_py[0]["invocationPayload"], "n1");
    let without = q("invocationIdPrefix=odd-001".into()).await;
    assert!(without[0].get("invocationPayload").is_none());
    assert_eq!(without[0]["returnPayload"], "Hello n1!");

    // Limit bounds.
    for limit in ["0", "101", "x"] {
        s.get(&format!(
            "/2016-08-15/services/{S}/functions/hello/stateful-async-invocations?limit={limit}"
        ))
        .await
        .assert_error(400, "InvalidArgument");
    }
    s.get(&format!(
        "/2016-08-15/services/{S}/functions/hello/stateful-async-invocations?nextToken=zzz"
    ))
    .await
    .assert_error(400, "InvalidArgument");
    assert!(added > 0);
}

fn wasmfc_tests_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn destinations_receive_a_record_and_rerun_makes_a_new_task() {
    let s = server(&["--retry-base-delay-ms", "20"]).await;
    s.create_function(S, "hello", guests::HELLO, json!({})).await;
    s.create_function(S, "fail", guests::FAIL, json!({})).await;
    s.create_function(S, "sink", guests::ECHO_WASI, json!({})).await;
    s.task_mode(S, "sink", json!({})).await;
    let dest = |f: &str| format!("acs:fc:cn-local:0:services/{S}.LATEST/functions/{f}");
    s.task_mode(
        S,
        "hello",
        json!({ "destinationConfig": { "onSuccess": { "destination": dest("sink") } } }),
    )
    .await;
    s.task_mode(
        S,
        "fail",
        json!({ "maxAsyncRetryAttempts": 1, "destinationConfig": { "onFailure": { "destination": dest("sink") } } }),
    )
    .await;
    s.invoke_async(S, "hello", "Kyoto", Some("d-ok")).await;
    s.invoke_async(S, "fail", "bad", Some("d-fail")).await;
    let ok = s.wait_status(S, "hello", "d-ok", "Succeeded", SECS(10)).await;
    assert!(
        ok["destinationStatus"].as_str().unwrap().starts_with("Succeeded"),
        "{ok}"
    );
    let failed = s.wait_status(S, "fail", "d-fail", "Failed", SECS(10)).await;
    assert!(
        failed["destinationStatus"].as_str().unwrap().starts_with("Succeeded"),
        "{failed}"
    );

    // The sink ran twice; its results are the records it got.
    let deadline = Instant::now() + SECS(10);
    let records = loop {
        let list = s
            .get(&format!("/2016-08-15/services/{S}/functions/sink/stateful-async-invocations?status=Succeeded&includePayload=true"))
            .await
            .json();
        let items = list["invocations"].as_array().unwrap().clone();
        if items.len() == 2 {
            break items;
        }
        assert!(Instant::now() < deadline, "destination tasks did not run: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let parsed: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_str(r["returnPayload"].as_str().unwrap()).unwrap())
        .collect();
    let success = parsed
        .iter()
        .find(|r| r["requestContext"]["condition"] == "Success")
        .unwrap();
    assert_eq!(success["requestPayload"], "Kyoto");
    assert_eq!(success["responsePayload"], "Hello Kyoto!");
    assert_eq!(success["requestContext"]["invocationId"], "d-ok");
    let failure = parsed
        .iter()
        .find(|r| r["requestContext"]["condition"] == "RetriesExhausted")
        .unwrap();
    assert_eq!(failure["responseContext"]["functionError"], "HandledInvocationError");
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 2);

    // Re-run: same payload, new id.
    let r = s
        .call(
            Method::POST,
            &format!("/2016-08-15/services/{S}/functions/hello/stateful-async-invocations/d-ok/rerun"),
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let new_id = r.json()["invocationId"].as_str().unwrap().to_string();
    assert_ne!(new_id, "d-ok");
    let t = s.wait_status(S, "hello", &new_id, "Succeeded", SECS(10)).await;
    assert_eq!(t["returnPayload"], "Hello Kyoto!");
    assert!(statuses(&t).len() == 4);
}

#[tokio::test]
async fn plain_async_invocations_run_but_are_not_listed() {
    let s = server(&[]).await;
    s.create_function(S, "counter", guests::COUNTER, json!({})).await;
    let r = s.invoke_async(S, "counter", "", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("x-fc-stateful-async-invocation-id").is_none());
    // It ran, durably, as a task nobody lists.
    let deadline = Instant::now() + SECS(10);
    while s.metric("wasmfc_tasks_finished_total", &[("state", "Succeeded")]).await < 1.0 {
        assert!(Instant::now() < deadline, "the async invocation never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list = s
        .get(&format!(
            "/2016-08-15/services/{S}/functions/counter/stateful-async-invocations"
        ))
        .await
        .json();
    assert_eq!(list["invocations"], json!([]));
}

/// Runs `wasmfc tasks ...` against `s`; panics unless it succeeds.
async fn tasks_cli(s: &Server, args: &[&str]) -> String {
    let (ok, text) = s.cli(&[&["tasks"], args].concat()).await;
    assert!(ok, "wasmfc tasks {args:?} failed:\n{text}");
    text
}

#[tokio::test]
async fn the_tasks_cli_lists_gets_stops_reruns_and_reads_logs() {
    let s = Server::start(ServerOptions::default().with_credentials("cliAK", "cliSecret")).await;
    // The harness signs its own requests on a server with credentials.
    s.create_service(S).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s.task_mode(S, "sleep", json!({})).await;
    s.invoke_async(S, "sleep", "5", Some("cli-short")).await;
    s.invoke_async(S, "sleep", "60000", Some("cli-long")).await;
    s.wait_status(S, "sleep", "cli-short", "Succeeded", SECS(10)).await;
    s.wait_status(S, "sleep", "cli-long", "Running", SECS(10)).await;
    let list = tasks_cli(&s, &["list", "-s", S, "-f", "sleep", "--json"]).await;
    let tasks: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(tasks.as_array().unwrap().len(), 2, "{list}");
    let table = tasks_cli(&s, &["list", "-s", S, "-f", "sleep"]).await;
    assert!(table.contains("cli-long") && table.contains("STATUS"), "{table}");
    let get = tasks_cli(&s, &["get", "-s", S, "-f", "sleep", "cli-short"]).await;
    assert!(get.contains("Succeeded") && get.contains("slept 5 ms"), "{get}");
    let stop = tasks_cli(&s, &["stop", "-s", S, "-f", "sleep", "cli-long"]).await;
    assert!(stop.contains("cli-long: Stopp"), "{stop}");
    let logs = tasks_cli(&s, &["logs", "-s", S, "-f", "sleep", "cli-short"]).await;
    assert!(logs.contains("sleep: 5 ms"), "{logs}");
    let rerun = tasks_cli(&s, &["rerun", "-s", S, "-f", "sleep", "cli-short", "--json"]).await;
    let new: Value = serde_json::from_str(&rerun).unwrap();
    assert_eq!(new["invocationPayload"], "5");
    // A wrong secret is refused by the server and reported.
    let out = std::process::Command::new(wasmfc_tests::wasmfc_bin())
        .args(["tasks", "list", "-s", S, "-f", "sleep"])
        .env("WASMFC_ENDPOINT", &s.base)
        .env("WASMFC_ACCESS_KEY_ID", "cliAK")
        .env("WASMFC_ACCESS_KEY_SECRET", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SignatureNotMatch"));
}
