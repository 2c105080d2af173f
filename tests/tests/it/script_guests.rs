//! Functions in Python (componentize-py) and JavaScript (componentize-js),
//! built from source by scripts/build-script-guests.sh: invoked sync (a
//! result, a handled error, the log tail), run as tasks, and a looping task
//! stopped — epoch interruption reaches interpreted code too.

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
