//! Per-invocation limits: a guest that loops, hogs memory or traps fails
//! its own invocation only.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wasmfc_tests::{Server, guests};

#[tokio::test]
async fn spin_times_out_on_its_deadline_and_the_server_keeps_serving() {
    let s = Server::default().await;
    s.create_service("lim").await;
    s.create_function("lim", "spin", guests::SPIN, json!({ "timeout": 1 }))
        .await;
    s.create_function("lim", "hello", guests::HELLO, json!({})).await;
    let started = Instant::now();
    let r = s.invoke("lim", "spin", "", &[]).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-fc-error-type"), Some("UnhandledInvocationError"));
    assert_eq!(r.json()["errorType"], "FunctionTimeout");
    assert!(took < Duration::from_millis(1500), "timed out after {took:?}");
    assert!(took >= Duration::from_millis(1000), "gave up early: {took:?}");
    // A finite spin succeeds.
    let r = s.invoke("lim", "spin", "1000", &[]).await;
    assert!(r.text().starts_with("spun 1000"), "{}", r.text());
    assert_eq!(s.invoke("lim", "hello", "after", &[]).await.text(), "Hello after!");
}

#[tokio::test]
async fn memhog_fails_cleanly_at_its_memory_size() {
    let s = Server::default().await;
    s.create_service("lim").await;
    s.create_function("lim", "memhog", guests::MEMHOG, json!({ "memorySize": 64 }))
        .await;
    let r = s.invoke("lim", "memhog", "", &[]).await;
    assert_eq!(r.header("x-fc-error-type"), Some("UnhandledInvocationError"));
    assert_eq!(r.json()["errorType"], "OutOfMemory", "{}", r.text());
    let peak: f64 = r.header("x-fc-max-memory-usage").unwrap().parse().unwrap();
    assert!(peak > 32.0 && peak <= 64.0, "peak {peak} MB");
    // Within the limit it succeeds, on a new instance.
    let r = s.invoke("lim", "memhog", "16", &[]).await;
    assert_eq!(r.text(), "held 16 MiB");
}

#[tokio::test]
async fn trap_fails_only_its_invocation_and_instance() {
    let s = Server::default().await;
    s.create_service("lim").await;
    s.create_function("lim", "trap", guests::TRAP, json!({})).await;
    let ok = s.invoke("lim", "trap", "ok", &[]).await;
    assert_eq!(ok.text(), "no trap");
    let bad = s.invoke("lim", "trap", "boom", &[]).await;
    assert_eq!(bad.json()["errorType"], "Trap");
    // The trapped instance is not reused.
    let again = s.invoke("lim", "trap", "ok", &[]).await;
    assert_eq!(again.text(), "no trap");
    assert_ne!(bad.header("x-fc-instance-id"), again.header("x-fc-instance-id"));
}

#[tokio::test]
async fn eight_spinning_guests_do_not_block_hello() {
    let s = Server::default().await;
    s.create_service("lim").await;
    s.create_function("lim", "spin", guests::SPIN, json!({ "timeout": 3 }))
        .await;
    s.create_function("lim", "hello", guests::HELLO, json!({})).await;
    let spins: Vec<_> = (0..8)
        .map(|_| {
            let http = s.http.clone();
            let url = s.url("/2016-08-15/services/lim/functions/spin/invocations");
            tokio::spawn(async move { http.post(url).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = s.invoke("lim", "hello", "busy", &[]).await;
    let took = started.elapsed();
    assert_eq!(r.text(), "Hello busy!");
    assert!(
        took < Duration::from_secs(1),
        "hello waited {took:?} behind spinning guests"
    );
    for h in spins {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
}
