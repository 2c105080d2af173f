//! Per-invocation limits: a guest that loops, hogs memory or traps fails
//! its own invocation only.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wasmfc_tests::{Server, ServerOptions, guests};

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
    // Cut off at its deadline: not early, and not left to spin on.
    assert!(took >= Duration::from_millis(1000), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(30), "timed out only after {took:?}");
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
    // All eight are running (each on an instance of its own) ...
    s.wait_metric("wasmfc_instances_live", &[], 8.0, Duration::from_secs(30))
        .await;
    let r = s.invoke("lim", "hello", "busy", &[]).await;
    assert_eq!(r.text(), "Hello busy!");
    // ... and hello was answered while they still ran (each spins until its
    // 3 s timeout): it did not wait behind them.
    assert!(
        spins.iter().all(|h| !h.is_finished()),
        "hello was answered only after a spinning guest finished"
    );
    for h in spins {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
}

/// `fuelBudget` on a server with `--fuel-metering`: a spinning guest stops
/// at its budget with an error that names it, and every invocation reports
/// the fuel it consumed (response header, task record, metric).
#[tokio::test]
async fn a_fuel_budget_stops_a_spinning_guest_and_fuel_is_reported() {
    let s = Server::start(ServerOptions::default().arg("--fuel-metering")).await;
    s.create_service("fuel").await;
    s.create_function(
        "fuel",
        "spin",
        guests::SPIN,
        json!({ "timeout": 600, "fuelBudget": 50_000_000 }),
    )
    .await;
    s.create_function("fuel", "hello", guests::HELLO, json!({})).await;

    let r = s.invoke("fuel", "spin", "", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-fc-error-type"), Some("UnhandledInvocationError"));
    assert_eq!(r.json()["errorType"], "FuelExhausted", "{}", r.text());
    assert!(
        r.json()["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("50000000")),
        "{}",
        r.text()
    );
    // Within the budget the same guest succeeds.
    let r = s.invoke("fuel", "spin", "1000", &[]).await;
    assert!(r.text().starts_with("spun 1000"), "{}", r.text());

    let r = s.invoke("fuel", "hello", "fuel", &[]).await;
    assert_eq!(r.text(), "Hello fuel!");
    let consumed: u64 = r
        .header("x-wasmfc-fuel-consumed")
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no fuel header: {:?}", r.headers));
    assert!(consumed > 0);
    assert!(
        s.metric("wasmfc_fuel_consumed_total", &[("function", "fuel/hello")])
            .await
            >= consumed as f64
    );

    s.task_mode("fuel", "hello", json!({})).await;
    assert_eq!(
        s.invoke_async("fuel", "hello", "task", Some("fueled")).await.status,
        202
    );
    let task = s
        .wait_status("fuel", "hello", "fueled", "Succeeded", Duration::from_secs(60))
        .await;
    assert!(task["fuelConsumed"].as_u64().is_some_and(|f| f > 0), "{task}");
}

#[tokio::test]
async fn a_fuel_budget_needs_a_metering_server() {
    let s = Server::default().await;
    s.create_service("fuel").await;
    let r = s
        .post_json(
            "/2016-08-15/services/fuel/functions",
            json!({
                "functionName": "spin", "runtime": "wasm", "handler": "index.handler",
                "fuelBudget": 1000,
                "code": { "zipFile": wasmfc_tests::b64(&wasmfc_tests::wasm(guests::SPIN)) },
            }),
        )
        .await;
    r.assert_error(400, "InvalidArgument");
    assert!(r.text().contains("--fuel-metering"), "{}", r.text());
}
