//! The web console in a real browser: headless Chromium over WebDriver
//! (see `wasmfc_tests::browser`), clicking and typing as a person does.
//! Live updates are checked on one document: the page is marked, and the
//! state change has to show up with the mark still there (no reload).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use wasmfc_tests::browser::Browser;
use wasmfc_tests::{Server, ServerOptions, guests};

/// Uploads `sleep` with the task preset, submits `video-1` with a 2 s
/// delay, sees it Enqueued then Running without a reload, stops it, re-runs
/// it to Succeeded and reads the re-run's logs.
#[tokio::test]
async fn a_task_function_is_uploaded_and_its_delayed_task_stopped_and_rerun() {
    let s = Server::default().await;
    let b = Browser::open("task-lifecycle", &s.url("/")).await;

    b.go("/").await;
    b.click("#create-function").await;
    b.fill("#service", "media").await;
    b.fill("#name", "transcode").await;
    b.wait("#code").await.send_keys(guests::SLEEP).await.unwrap();
    assert!(
        b.wait("#task_preset").await.is_selected().await.unwrap(),
        "the task preset is on by default"
    );
    b.click("#create").await;
    b.wait("#task-mode").await;
    assert_eq!(b.path().await, "/console/services/media/functions/transcode");
    assert_eq!(b.text("#task-mode").await, "on");
    b.wait("#no-tasks").await;

    b.click("#open-submit").await;
    b.click("#id-custom").await;
    b.fill("#invocation-id", "9bad").await;
    let problem = b.text("#id-problem").await;
    assert!(!problem.is_empty(), "the id rule is checked as you type");
    b.fill("#invocation-id", "video-1").await;
    b.wait_gone("#id-problem:not(:empty)").await;
    b.fill("#delay", "2").await;
    b.fill("#event", r#"{"ms": 10000}"#).await;
    b.click("#submit-task").await;

    b.wait("#task-status[data-status='Enqueued']").await;
    assert!(b.path().await.ends_with("/tasks/video-1"));
    b.wait("#next-run").await;
    b.mark_document().await;
    b.wait("#task-status[data-status='Running']").await;
    assert!(b.same_document().await, "Running showed up without a reload");
    b.screenshot("running").await;

    b.click("#stop-task").await;
    let clicked = Instant::now();
    b.wait("#task-status[data-status='Stopped']").await;
    println!("Stopped shown {:?} after the click", clicked.elapsed());
    let t = s.task("media", "transcode", "video-1").await;
    assert_eq!(t["status"], "Stopped", "{t}");

    let stopped_path = b.path().await;
    b.click("#rerun-task").await;
    let rerun_path = b.wait_path_change(&stopped_path).await;
    b.wait("#task-status").await;
    assert!(
        !rerun_path.ends_with("/video-1"),
        "a re-run is a new task: {rerun_path}"
    );
    b.mark_document().await;
    b.wait("#task-status[data-status='Succeeded']").await;
    assert!(b.same_document().await, "Succeeded showed up without a reload");
    assert!(b.text("#logs").await.contains("sleep: 10000 ms"));
    assert!(b.text("#result").await.contains("slept 10000 ms"));
    assert!(b.text("#payload").await.contains("10000"));
    b.go("/console/services/media/functions/transcode").await;
    b.wait("tr[data-task='video-1'][data-status='Stopped']").await;
    b.finish().await;
}

/// Submits an HTTP task (method, path and query, body) and re-runs it: the
/// re-run replays the recorded request.
#[tokio::test]
async fn an_http_task_is_submitted_and_rerun() {
    let s = Server::default().await;
    s.create_service("web").await;
    s.create_function("web", "hello", guests::HTTP_HELLO, json!({})).await;
    let r = s
        .post_json(
            "/2016-08-15/services/web/functions/hello/triggers",
            json!({"triggerName": "web", "triggerType": "http",
                   "triggerConfig": {"authType": "anonymous", "methods": ["GET", "POST"]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.task_mode("web", "hello", json!({})).await;
    let b = Browser::open("http-task", &s.url("/")).await;

    b.go("/console/services/web/functions/hello").await;
    b.click("#open-submit").await;
    b.select("#http-method", "POST").await;
    b.fill("#http-path", "/orders?id=7").await;
    b.fill("#http-body", "one order").await;
    b.click("#submit-task").await;
    b.wait("#task-status[data-status='Succeeded']").await;
    let result = b.text("#result").await;
    assert!(
        result.contains(r#""method":"POST""#) && result.contains(r#""query":"id=7""#),
        "{result}"
    );
    let payload = b.text("#payload").await;
    assert!(
        payload.contains("POST /orders?id=7") && payload.contains("one order"),
        "{payload}"
    );
    let first = b.path().await;

    b.click("#rerun-task").await;
    // The re-run is a new task: its own page.
    b.wait_path_change(&first).await;
    b.wait("#task-status[data-status='Succeeded']").await;
    assert!(b.text("#result").await.contains(r#""path":"/orders""#));
    assert!(b.text("#payload").await.contains("one order"));
    b.finish().await;
}

/// Twenty running tasks are stopped by an id-prefix filter, after a
/// confirmation that counts them; a task outside the filter keeps running.
#[tokio::test]
async fn twenty_running_tasks_are_bulk_stopped_by_a_prefix_filter() {
    // Room for all 21 to run at once (the default is 4 per core).
    let s = Server::start(ServerOptions::default().arg("--task-concurrency").arg("32")).await;
    s.create_service("batch").await;
    s.create_function("batch", "sleep", guests::SLEEP, json!({"timeout": 600}))
        .await;
    s.task_mode("batch", "sleep", json!({})).await;
    let ids: Vec<String> = (0..20).map(|i| format!("night-{i:02}")).collect();
    for id in ids.iter().map(String::as_str).chain(["keep-1"]) {
        let r = s
            .invoke_async("batch", "sleep", json!({"ms": 600000}).to_string(), Some(id))
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    for id in ids.iter().map(String::as_str).chain(["keep-1"]) {
        s.wait_status("batch", "sleep", id, "Running", Duration::from_secs(60))
            .await;
    }
    let b = Browser::open("bulk-stop", &s.url("/")).await;

    b.go("/console/services/batch/functions/sleep").await;
    b.fill("#filter-prefix", "night-").await;
    b.click("#apply-filters").await;
    b.wait("tr[data-task='night-00']").await;
    assert!(b.path().await.contains("prefix=night-"), "the filter is in the URL");
    b.click("#bulk-stop").await;
    assert_eq!(b.text("#bulk-count").await, "20");
    b.click("#bulk-confirm").await;
    b.wait("#bulk-results").await;
    let rows = b
        .client()
        .find_all(fantoccini::Locator::Css("#bulk-results tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    for id in &ids {
        s.wait_status("batch", "sleep", id, "Stopped", Duration::from_secs(60))
            .await;
    }
    assert_eq!(s.task("batch", "sleep", "keep-1").await["status"], "Running");
    b.go("/console/services/batch/functions/sleep?status=Stopped").await;
    b.wait("tr[data-task='night-19'][data-status='Stopped']").await;
    b.finish().await;
}

/// An `approval` orchestration waits for its event; raising it from the
/// instance's page completes it.
#[tokio::test]
async fn an_event_raised_from_the_orchestration_page_completes_it() {
    let s = Server::default().await;
    s.create_service("durable").await;
    for (name, guest) in [("hello", guests::HELLO), ("approval", guests::APPROVAL)] {
        s.create_function("durable", name, guest, json!({})).await;
    }
    let r = s
        .call(
            Method::POST,
            "/runtime/webhooks/durabletask/orchestrators/approval/expense-7",
            json!({"timeoutMs": 600000}).to_string(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let b = Browser::open("orchestration", &s.url("/")).await;

    b.go("/console/orchestrations").await;
    b.wait("a[href$='/expense-7']").await;
    b.click("a[href$='/expense-7']").await;
    b.wait("#raise-form").await;
    let started = Instant::now();
    while !b.text("#orchestration").await.contains("waiting for approval") {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "{}",
            b.report("no custom status").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.fill("#event-name", "Approval").await;
    b.fill("#event-data", r#"{"by": "Ann"}"#).await;
    b.click("#raise-event").await;
    b.wait("#orch-status[data-status='Completed']").await;
    assert!(b.text("#orch-output").await.contains("Hello Ann!"));
    assert!(b.text("#history").await.contains("EventRaised"));
    b.finish().await;
}

/// With credentials: a wrong secret is refused with a message, the right
/// one opens the console, sign-out ends the session.
#[tokio::test]
async fn the_console_signs_in_with_credentials_and_refuses_a_wrong_secret() {
    let s = Server::start(ServerOptions::default().with_credentials("ak-console", "right-secret")).await;
    let b = Browser::open("sign-in", &s.url("/")).await;

    b.go("/console").await;
    b.wait("#sign-in").await;
    assert_eq!(b.path().await, "/console/sign-in");
    b.fill("#access_key_id", "ak-console").await;
    b.fill("#access_key_secret", "wrong").await;
    b.click("#sign-in").await;
    assert!(!b.text("#sign-in-error").await.is_empty());
    b.fill("#access_key_secret", "right-secret").await;
    b.click("#sign-in").await;
    b.wait("#create-function").await;
    assert!(b.text("header").await.contains("ak-console"));
    b.screenshot("signed-in").await;
    b.click(".signout button").await;
    b.wait("#sign-in").await;
    b.go("/console").await;
    b.wait("#sign-in").await;
    // The wrong-secret answer is a 401 page; Chromium logs that as an error.
    let _ = b.console_errors().await;
    b.finish().await;
}
