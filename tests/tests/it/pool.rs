//! The instance pool: warm reuse, scale to zero after the idle timeout,
//! retired instances, and the metrics that count it all.

use std::time::Duration;

use serde_json::json;
use wasmfc_tests::{Server, ServerOptions, guests};

#[tokio::test]
async fn a_second_invocation_is_warm_on_the_same_instance_and_keeps_its_globals() {
    let s = Server::default().await;
    s.create_service("pool").await;
    s.create_function("pool", "counter", guests::COUNTER, json!({ "initializer": "init" }))
        .await;
    let first = s.invoke("pool", "counter", "", &[]).await;
    let second = s.invoke("pool", "counter", "", &[]).await;
    assert_eq!(first.header("x-fc-start-type"), Some("cold"));
    assert_eq!(second.header("x-fc-start-type"), Some("warm"));
    assert_eq!(first.header("x-fc-instance-id"), second.header("x-fc-instance-id"));
    // Globals live as long as the instance, as in FC; the initializer ran once.
    assert_eq!(first.json(), json!({ "events": 1, "initialized": 1 }));
    assert_eq!(second.json(), json!({ "events": 2, "initialized": 1 }));
}

#[tokio::test]
async fn after_the_idle_timeout_the_next_start_is_cold() {
    let s = Server::start(ServerOptions::default().arg("--idle-timeout-secs").arg("1")).await;
    s.create_service("pool").await;
    s.create_function("pool", "hello", guests::HELLO, json!({})).await;
    let first = s.invoke("pool", "hello", "a", &[]).await;
    assert_eq!(s.metric("wasmfc_instances_idle", &[]).await, 1.0);
    // The reaper (every second) drops the instance once it has idled past
    // the timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.metric("wasmfc_instances_idle", &[]).await > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle instance was never reaped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let next = s.invoke("pool", "hello", "b", &[]).await;
    assert_eq!(next.header("x-fc-start-type"), Some("cold"));
    assert_ne!(first.header("x-fc-instance-id"), next.header("x-fc-instance-id"));
}

#[tokio::test]
async fn a_timed_out_instance_is_never_reused() {
    let s = Server::default().await;
    s.create_service("pool").await;
    s.create_function("pool", "spin", guests::SPIN, json!({ "timeout": 1 }))
        .await;
    let ok = s.invoke("pool", "spin", "10", &[]).await;
    let timed_out = s.invoke("pool", "spin", "", &[]).await;
    assert_eq!(timed_out.json()["errorType"], "FunctionTimeout");
    // The timed-out call ran on the warm instance, which is then dropped.
    assert_eq!(ok.header("x-fc-instance-id"), timed_out.header("x-fc-instance-id"));
    let after = s.invoke("pool", "spin", "10", &[]).await;
    assert_eq!(after.header("x-fc-start-type"), Some("cold"));
    assert_ne!(after.header("x-fc-instance-id"), timed_out.header("x-fc-instance-id"));
}

#[tokio::test]
async fn metrics_count_invocations_by_start_kind() {
    let s = Server::default().await;
    s.create_service("pool").await;
    s.create_function("pool", "hello", guests::HELLO, json!({})).await;
    let labels = |start| [("function", "pool/hello"), ("start", start), ("result", "success")];
    assert_eq!(s.metric("wasmfc_invocations_total", &labels("cold")).await, 0.0);
    for _ in 0..3 {
        s.invoke("pool", "hello", "m", &[]).await;
    }
    assert_eq!(s.metric("wasmfc_invocations_total", &labels("cold")).await, 1.0);
    assert_eq!(s.metric("wasmfc_invocations_total", &labels("warm")).await, 2.0);
    assert!(
        s.metric(
            "wasmfc_invocation_duration_seconds_count",
            &[("function", "pool/hello")]
        )
        .await
            >= 3.0
    );
    assert_eq!(s.metric("wasmfc_instances_live", &[]).await, 1.0);
}

/// Every way of running a function reaches the invocation counter: a sync
/// InvokeFunction, an async task, a request through an HTTP trigger and an
/// orchestration's activity.
#[tokio::test]
async fn every_kind_of_invocation_is_counted() {
    let s = Server::default().await;
    s.create_service("count").await;
    s.create_function("count", "hello", guests::HELLO, json!({})).await;
    s.create_function("count", "web", guests::HTTP_HELLO, json!({})).await;
    s.create_function("count", "hello-sequence", guests::HELLO_SEQUENCE, json!({}))
        .await;
    let trigger = s
        .post_json(
            "/2016-08-15/services/count/functions/web/triggers",
            json!({"triggerName": "web", "triggerType": "http",
                   "triggerConfig": {"authType": "anonymous", "methods": ["GET"]}}),
        )
        .await;
    assert_eq!(trigger.status, 200, "{}", trigger.text());
    let counted = |function: &'static str| [("function", function), ("result", "success")];
    let ceiling = Duration::from_secs(60);

    assert_eq!(s.invoke("count", "hello", "sync", &[]).await.status, 200);
    assert_eq!(s.metric("wasmfc_invocations_total", &counted("count/hello")).await, 1.0);

    s.task_mode("count", "hello", json!({})).await;
    let submitted = s.invoke_async("count", "hello", "async", Some("counted-task")).await;
    assert_eq!(submitted.status, 202, "{}", submitted.text());
    s.wait_status("count", "hello", "counted-task", "Succeeded", ceiling)
        .await;
    assert_eq!(s.metric("wasmfc_invocations_total", &counted("count/hello")).await, 2.0);

    let served = s.get("/2016-08-15/proxy/count/web/x").await;
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(s.metric("wasmfc_invocations_total", &counted("count/web")).await, 1.0);

    // hello-sequence calls its `hello` activity three times.
    let started = s
        .post_json(
            "/runtime/webhooks/durabletask/orchestrators/hello-sequence/counted",
            json!(null),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text());
    s.wait_metric("wasmfc_invocations_total", &counted("count/hello"), 5.0, ceiling)
        .await;
}
