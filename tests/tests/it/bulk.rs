//! Bulk stop and re-run by the list filters
//! (`POST .../stateful-async-invocations:stop` / `:rerun`).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Server, guests};

const S: &str = "bulk";
const BASE: &str = "/2016-08-15/services/bulk/functions/sleep/stateful-async-invocations";

async fn post(s: &Server, path: &str) -> Value {
    let r = s.call(Method::POST, path, "", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    r.json()
}

#[tokio::test]
async fn stop_and_rerun_every_task_a_filter_matches() {
    let s = Server::start(
        wasmfc_tests::ServerOptions::default()
            .arg("--task-concurrency")
            .arg("32"),
    )
    .await;
    s.create_service(S).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 120 }))
        .await;
    s.task_mode(S, "sleep", json!({})).await;
    for i in 0..20 {
        let r = s
            .invoke_async(S, "sleep", "60000", Some(&format!("batch-{i:02}")))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    let r = s.invoke_async(S, "sleep", "50", Some("other-1")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    for i in 0..20 {
        s.wait_status(S, "sleep", &format!("batch-{i:02}"), "Running", Duration::from_secs(60))
            .await;
    }

    let dry = post(&s, &format!("{BASE}:stop?invocationIdPrefix=batch-&dryRun=true")).await;
    assert_eq!(dry["matched"], 20, "{dry}");
    assert_eq!(
        s.task(S, "sleep", "batch-00").await["status"],
        "Running",
        "a dry run stopped something"
    );

    let stopped = post(&s, &format!("{BASE}:stop?invocationIdPrefix=batch-")).await;
    assert_eq!(stopped["matched"], 20, "{stopped}");
    let results = stopped["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .all(|r| r["result"]["status"] == "Stopping" || r["result"]["status"] == "Stopped"),
        "{stopped}"
    );
    for i in 0..20 {
        s.wait_status(S, "sleep", &format!("batch-{i:02}"), "Stopped", Duration::from_secs(60))
            .await;
    }
    // The filter kept the other task out.
    s.wait_status(S, "sleep", "other-1", "Succeeded", Duration::from_secs(60))
        .await;

    let limited = post(
        &s,
        &format!("{BASE}:rerun?invocationIdPrefix=batch-&status=Stopped&dryRun=true&maxTasks=5"),
    )
    .await;
    assert_eq!(limited["matched"], 5, "{limited}");
    assert_eq!(limited["truncated"], true, "{limited}");
    let rerun = post(&s, &format!("{BASE}:rerun?invocationIdPrefix=batch-&status=Stopped")).await;
    assert_eq!(rerun["matched"], 20, "{rerun}");
    let new_id = rerun["results"][0]["result"]["newInvocationId"]
        .as_str()
        .unwrap()
        .to_string();
    let t = s.task(S, "sleep", &new_id).await;
    assert_ne!(t["status"], "Stopped", "{t}");

    // The same through `wasmfc tasks`.
    let (ok, out) = s
        .cli(&[
            "tasks",
            "rerun-matching",
            "-s",
            S,
            "-f",
            "sleep",
            "--prefix",
            "batch-",
            "--status",
            "Stopped",
            "--dry-run",
        ])
        .await;
    assert!(ok && out.contains("would touch 20 task(s)"), "{out}");
    let (ok, out) = s
        .cli(&["tasks", "stop-matching", "-s", S, "-f", "sleep", "--prefix", "batch-"])
        .await;
    assert!(ok && out.contains("stop: touched"), "{out}");

    let bad = s.call(Method::POST, &format!("{BASE}:stop?maxTasks=0"), "", &[]).await;
    bad.assert_error(400, "InvalidArgument");
}
