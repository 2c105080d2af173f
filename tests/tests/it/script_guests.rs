//! Functions in Python (componentize-py) and JavaScript (componentize-js),
//! built from source by scripts/build-script-guests.sh: invoked sync (a
//! result, a handled error, the log tail), run as tasks, and a looping task
//! stopped — epoch interruption reaches interpreted code too; and an HTTP
//! function in Python.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use wasmfc_tests::{Server, script_guests};

const S: &str = "lang";
const WAIT: Duration = Duration::from_secs(60);

async fn check_language(s: &Server, function: &str, guest: &str, log_prefix: &str) {
    s.create_function(S, function, guest, json!({ "timeout": 120 })).await;
    let r = s.invoke(S, function, "Ada", &[("x-fc-log-type", "Tail")]).await;
    assert_eq!(r.text(), "Hello Ada!", "{function}");
    let log = base64_decode(r.header("x-fc-log-result").unwrap_or(""));
    assert!(
        log.contains(&format!("{log_prefix}: greeting Ada")),
        "{function}: {log}"
    );
    let r = s.invoke(S, function, "fail", &[]).await;
    assert_eq!(
        r.header("x-fc-error-type"),
        Some("HandledInvocationError"),
        "{function}"
    );
    assert_eq!(r.json()["errorMessage"], "asked to fail", "{function}: {}", r.text());
    // A warm second call on the same instance.
    let again = s.invoke(S, function, "Bo", &[]).await;
    assert_eq!(again.text(), "Hello Bo!");
    assert_eq!(again.header("x-fc-start-type"), Some("warm"), "{function}");

    s.task_mode(S, function, json!({})).await;
    let r = s.invoke_async(S, function, "Task", Some("ok-1")).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text());
    let t = s.wait_status(S, function, "ok-1", "Succeeded", WAIT).await;
    assert_eq!(t["returnPayload"], "Hello Task!", "{t}");

    s.invoke_async(S, function, "loop forever", Some("loop-1")).await;
    s.wait_status(S, function, "loop-1", "Running", WAIT).await;
    let path = format!("/2016-08-15/services/{S}/functions/{function}/stateful-async-invocations/loop-1");
    let r = s.call(Method::PUT, &path, Vec::new(), &[]).await;
    assert!(r.status.is_success(), "stop: {}", r.text());
    let t = s.wait_status(S, function, "loop-1", "Stopped", WAIT).await;
    assert!(t["durationMs"].as_i64().is_some(), "{t}");
    // The stopped instance is gone; the function serves on.
    assert_eq!(s.invoke(S, function, "after", &[]).await.text(), "Hello after!");
}

fn base64_decode(text: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn a_python_function_runs_sync_and_as_tasks_and_stop_interrupts_it() {
    let s = Server::default().await;
    s.create_service(S).await;
    check_language(&s, "hello-py", &script_guests::hello_py(), "hello-py").await;
}

#[tokio::test]
async fn a_javascript_function_runs_sync_and_as_tasks_and_stop_interrupts_it() {
    let s = Server::default().await;
    s.create_service(S).await;
    check_language(&s, "hello-js", &script_guests::hello_js(), "hello-js").await;
}

/// The HTTP function in Python: a `wasi:http/proxy` component built by
/// componentize-py answers on its trigger, its instance (and module
/// globals) serves the next request, and a trap drops it.
#[tokio::test]
async fn a_python_http_function_answers_and_its_instance_is_reused() {
    let s = Server::default().await;
    s.create_service(S).await;
    s.create_function(S, "web-py", &script_guests::http_hello_py(), json!({ "timeout": 60 }))
        .await;
    let triggers = format!("/2016-08-15/services/{S}/functions/web-py/triggers");
    let config = json!({"authType": "anonymous", "methods": ["GET", "POST"]});
    let r = s
        .post_json(
            &triggers,
            json!({"triggerName": "web", "triggerType": "http", "triggerConfig": config, "qualifier": null}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "create trigger: {}", r.text());

    let base = format!("/2016-08-15/proxy/{S}/web-py");
    let first = s.get(&format!("{base}/greet")).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text());
    assert_eq!(first.text(), "Hello from Python at /greet!\n");
    assert_eq!(first.header("x-fc-start-type"), Some("cold"));
    assert_eq!(first.header("x-wasmfc-served"), Some("1"));
    let instance = first.header("x-fc-instance-id").unwrap_or("").to_string();

    // The instance goes back to the pool once the guest has finished its
    // body (a request sent before would start another instance); the next
    // request then finds it warm, its counter kept.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let listed = s
            .get(&format!("/2016-08-15/services/{S}/functions/web-py/instances"))
            .await
            .json();
        let idle = listed["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["instanceId"] == instance.as_str() && i["wasmfc"]["status"] == "Idle");
        if idle {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instance never went idle: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let warm = s.get(&format!("{base}/again")).await;
    assert_eq!(warm.header("x-fc-start-type"), Some("warm"), "{}", warm.text());
    assert_eq!(warm.header("x-fc-instance-id"), Some(instance.as_str()));
    assert_eq!(warm.header("x-wasmfc-served"), Some("2"));

    let posted = s.call(Method::POST, &format!("{base}/shout"), "quiet words", &[]).await;
    assert_eq!(posted.status.as_u16(), 200, "{}", posted.text());
    assert_eq!(posted.text(), "QUIET WORDS");

    s.get(&format!("{base}/trap"))
        .await
        .assert_error(502, "UnhandledInvocationError");
    let after = s.get(&format!("{base}/after")).await;
    assert_eq!(after.text(), "Hello from Python at /after!\n");
    assert_eq!(
        after.header("x-wasmfc-served"),
        Some("1"),
        "a trapped instance was reused"
    );
    assert_ne!(after.header("x-fc-instance-id"), Some(instance.as_str()));
}
