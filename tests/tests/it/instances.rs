//! ListInstances' wasmfc fields and recycling an instance: idle ones go at
//! once, a busy one after its call.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Server, guests};

const S: &str = "inst";

async fn instances(s: &Server, function: &str) -> Vec<Value> {
    let r = s
        .get(&format!("/2021-04-06/services/{S}/functions/{function}/instances"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["instances"].as_array().cloned().unwrap_or_default()
}

async fn recycle(s: &Server, function: &str, id: &str) -> wasmfc_tests::Reply {
    s.call(
        Method::POST,
        &format!("/2016-08-15/services/{S}/functions/{function}/instances/{id}/recycle"),
        "",
        &[],
    )
    .await
}

/// Polls the instance list until `done` holds; panics after a generous ceiling.
async fn wait_instances(s: &Server, function: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = instances(s, function).await;
        if done(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "instances never got there: {list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_idle_instance_is_listed_with_its_work_and_recycled_at_once() {
    let s = Server::default().await;
    s.create_service(S).await;
    s.create_function(S, "hello", guests::HELLO, json!({ "memorySize": 128 }))
        .await;
    for _ in 0..3 {
        assert_eq!(s.invoke(S, "hello", "x", &[]).await.status, StatusCode::OK);
    }
    let list = instances(&s, "hello").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let i = &list[0];
    assert_eq!(i["versionId"], "LATEST", "{i}");
    let w = &i["wasmfc"];
    assert_eq!(w["status"], "Idle", "{i}");
    assert_eq!(w["startType"], "on-demand", "{i}");
    assert_eq!(w["invocations"], 3, "{i}");
    assert_eq!(w["memoryLimitBytes"], 128u64 << 20, "{i}");
    assert!(w["memoryBytes"].as_u64().unwrap() > 0, "{i}");

    let id = i["instanceId"].as_str().unwrap().to_string();
    let r = recycle(&s, "hello", &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(instances(&s, "hello").await.is_empty());
    recycle(&s, "hello", &id).await.assert_error(404, "InstanceNotFound");
    // The next invocation starts a new instance.
    let r = s.invoke(S, "hello", "x", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = instances(&s, "hello").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_ne!(list[0]["instanceId"], id.as_str());
}

#[tokio::test]
async fn a_busy_instance_shows_its_task_and_is_recycled_after_its_call() {
    let s = Server::default().await;
    s.create_service(S).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s.task_mode(S, "sleep", json!({})).await;
    let r = s.invoke_async(S, "sleep", "1500", Some("busy-1")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    let list = wait_instances(&s, "sleep", |l| l.iter().any(|i| i["wasmfc"]["status"] == "Busy")).await;
    let busy = &list[0];
    assert_eq!(busy["wasmfc"]["current"], "busy-1", "{busy}");
    let id = busy["instanceId"].as_str().unwrap().to_string();
    let r = recycle(&s, "sleep", &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let listed = instances(&s, "sleep").await;
    assert!(listed.iter().any(|i| i["wasmfc"]["recycling"] == true), "{listed:?}");

    // The call finishes normally; the instance does not go back idle.
    let t = s
        .wait_status(S, "sleep", "busy-1", "Succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(t["instanceId"], id.as_str(), "{t}");
    wait_instances(&s, "sleep", |l| l.is_empty()).await;
}
