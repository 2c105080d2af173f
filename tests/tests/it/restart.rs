//! Everything survives a restart, and compiled code is not recompiled.

use serde_json::json;
use wasmfc_tests::{Server, guests};

#[tokio::test]
async fn restart_keeps_the_registry_and_reuses_compiled_artifacts() {
    let mut s = Server::default().await;
    s.create_service("keep").await;
    s.create_function(
        "keep",
        "hello",
        guests::HELLO,
        json!({ "environmentVariables": { "GREETING": "Hey" } }),
    )
    .await;
    s.create_function("keep", "echo", guests::ECHO_WASI, json!({})).await;
    s.post_json("/2016-08-15/services/keep/versions", json!({ "description": "v1" }))
        .await;
    s.post_json(
        "/2016-08-15/services/keep/aliases",
        json!({ "aliasName": "live", "versionId": "1" }),
    )
    .await;
    assert_eq!(s.invoke("keep.live", "hello", "a", &[]).await.text(), "Hey a!");
    // Uploading compiled both guests once.
    assert_eq!(s.metric("wasmfc_code_compilations_total", &[]).await, 2.0);

    s.restart().await;

    let svc = s.get("/2016-08-15/services/keep").await;
    assert_eq!(svc.json()["serviceName"], "keep");
    let fns = s.get("/2016-08-15/services/keep/functions").await.json();
    assert_eq!(fns["functions"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.get("/2016-08-15/services/keep/versions").await.json()["versions"][0]["versionId"],
        "1"
    );
    assert_eq!(
        s.get("/2016-08-15/services/keep/aliases/live").await.json()["versionId"],
        "1"
    );

    assert_eq!(s.invoke("keep.live", "hello", "b", &[]).await.text(), "Hey b!");
    assert_eq!(s.invoke("keep", "echo", "c", &[]).await.text(), "c");
    // The first invocations after the restart loaded the cached artifacts.
    assert_eq!(s.metric("wasmfc_code_compilations_total", &[]).await, 0.0);
    assert_eq!(s.metric("wasmfc_code_artifact_loads_total", &[]).await, 2.0);
}

/// SIGTERM stops the server accepting connections, but a synchronous
/// invocation already running finishes and its caller gets the answer.
#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_answers_invocations_in_flight() {
    let mut s = Server::default().await;
    s.create_service("drain").await;
    s.create_function("drain", "sleep", guests::SLEEP, json!({ "timeout": 30 }))
        .await;
    let url = s.url("/2016-08-15/services/drain/functions/sleep/invocations");
    let in_flight = tokio::spawn(async move {
        let response = reqwest::Client::new().post(url).body("1500").send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.text().await?))
    });
    // Let the invocation reach the guest, then ask the server to stop.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| s.stop());
    let (status, body) = in_flight.await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "slept 1500 ms");
}
