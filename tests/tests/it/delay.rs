//! `X-Fc-Async-Delay`: a delayed task waits `Enqueued` until it is due,
//! keeps its due time across a kill -9, and can be stopped while it waits.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wasmfc_tests::{Server, guests};

const S: &str = "delay";

async fn submit_delayed(s: &Server, id: &str, delay: &str) -> wasmfc_tests::Reply {
    s.invoke(
        S,
        "hello",
        "x",
        &[
            ("x-fc-invocation-type", "Async"),
            ("x-fc-stateful-async-invocation-id", id),
            ("x-fc-async-delay", delay),
        ],
    )
    .await
}

async fn deploy(s: &Server) {
    s.create_service(S).await;
    s.create_function(S, "hello", guests::HELLO, json!({})).await;
    s.task_mode(S, "hello", json!({})).await;
}

/// The time of the task's first history event with `status`.
fn event_time(task: &Value, status: &str) -> Option<i64> {
    task["events"]
        .as_array()?
        .iter()
        .find(|e| e["status"] == status)
        .and_then(|e| e["timestamp"].as_i64())
}

#[tokio::test]
async fn a_delayed_task_waits_until_due_even_across_kill_9() {
    let mut s = Server::default().await;
    deploy(&s).await;
    let r = submit_delayed(&s, "late", "3").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    let t = s.task(S, "hello", "late").await;
    assert_eq!(t["status"], "Enqueued", "{t}");
    let created = t["startedTime"].as_i64().unwrap();
    let due = t["wasmfc"]["nextRunTime"].as_i64().unwrap();
    assert_eq!(due, created + 3000, "{t}");

    s.kill9();
    s.start_again().await;
    let done = s
        .wait_status(S, "hello", "late", "Succeeded", Duration::from_secs(60))
        .await;
    let dequeued = event_time(&done, "Dequeued").expect("a Dequeued event");
    assert!(
        dequeued >= due,
        "left the queue at {dequeued}, before it was due at {due}: {done}"
    );
    assert_eq!(done["returnPayload"], "Hello x!", "{done}");
}

#[tokio::test]
async fn a_delayed_task_can_be_stopped_while_it_waits() {
    let s = Server::default().await;
    deploy(&s).await;
    let r = submit_delayed(&s, "never", "3600").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = s
        .call(
            reqwest::Method::PUT,
            &format!("/2016-08-15/services/{S}/functions/hello/stateful-async-invocations/never"),
            "",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = s.task(S, "hello", "never").await;
    assert_eq!(t["status"], "Stopped", "{t}");
    assert!(event_time(&t, "Running").is_none(), "a stopped task ran: {t}");
}

#[tokio::test]
async fn a_delay_outside_0_to_3600_seconds_is_refused() {
    let s = Server::default().await;
    deploy(&s).await;
    for bad in ["3601", "-1", "soon", "1.5"] {
        submit_delayed(&s, "bad", bad)
            .await
            .assert_error(400, "InvalidArgument");
    }
    // 0 means at once.
    let r = submit_delayed(&s, "now", "0").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    s.wait_status(S, "hello", "now", "Succeeded", Duration::from_secs(60))
        .await;
}
