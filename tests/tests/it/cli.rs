//! The daily CLI against the real server (signed): `invoke` sync, async,
//! `--tail`, `--data @file` and stdin; `logs --task` and `--follow`;
//! `functions list|get|delete`, `services list`; exit codes (0 ok, 1 guest
//! error, 2 usage/API error); keys from a profile file.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use wasmfc_tests::{Server, ServerOptions, guests, wasmfc_bin};

const S: &str = "cli";
const AK: &str = "cliAK";
const SK: &str = "cliSecret";

/// Runs the CLI against `s` (endpoint and keys from the environment) with
/// `stdin`; answers its exit code and stdout + stderr.
async fn run(s: &Server, args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(wasmfc_bin());
    cmd.args(args)
        .env("WASMFC_ENDPOINT", &s.base)
        .env("WASMFC_ACCESS_KEY_ID", AK)
        .env("WASMFC_ACCESS_KEY_SECRET", SK)
        .env_remove("WASMFC_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running the wasmfc CLI");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finishes")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn server() -> Server {
    let s = Server::start(ServerOptions::default().with_credentials(AK, SK)).await;
    s.create_service(S).await;
    s.create_function(S, "hello", guests::HELLO, json!({})).await;
    s.create_function(S, "fail", guests::FAIL, json!({})).await;
    s.create_function(S, "sleep", guests::SLEEP, json!({ "timeout": 60 }))
        .await;
    s
}

#[tokio::test]
async fn invoke_prints_results_and_exits_by_outcome() {
    let s = server().await;
    let (code, out) = run(&s, &["invoke", "cli/hello", "--data", "Ada"], b"").await;
    assert_eq!((code, out.trim()), (0, "Hello Ada!"), "{out}");
    let (code, out) = run(&s, &["invoke", "cli/hello", "--data", "-", "--tail"], b"Bo").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Hello Bo!") && out.contains("hello: greeting Bo"), "{out}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "Cy").unwrap();
    let at = format!("@{}", file.path().display());
    let (code, out) = run(&s, &["invoke", "cli/hello", "--data", &at, "--json"], b"").await;
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["result"], "Hello Cy!", "{v}");
    assert!(v["headers"]["x-fc-request-id"].is_string(), "{v}");

    // The guest failed: 1. The API refused: 2. A usage error: 2.
    let (code, out) = run(&s, &["invoke", "cli/fail", "--data", "y"], b"").await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("boom: y"), "{out}");
    let (code, out) = run(&s, &["invoke", "cli/nope"], b"").await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("FunctionNotFound"), "{out}");
    let (code, out) = run(&s, &["invoke", "cli/hello", "--id", "x"], b"").await;
    assert_eq!(code, 2, "--id without --async: {out}");
    let (code, out) = run(&s, &["invoke", "cli/hello", "--data", "@/no/such/file"], b"").await;
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn async_invoke_prints_the_task_id_and_logs_reads_and_follows_it() {
    let s = server().await;
    let (code, out) = run(
        &s,
        &["invoke", "cli/sleep", "--async", "--id", "t-1", "--data", "10"],
        b"",
    )
    .await;
    assert_eq!((code, out.trim()), (0, "t-1"), "{out}");
    s.wait_status(S, "sleep", "t-1", "Succeeded", Duration::from_secs(30))
        .await;
    let (code, out) = run(&s, &["logs", "cli/sleep", "--task", "t-1"], b"").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sleep: 10 ms (attempt 0)"), "{out}");

    // --follow prints until the task ends; without --task, the latest.
    let (code, out) = run(
        &s,
        &["invoke", "cli/sleep", "--async", "--id", "t-2", "--data", "1500"],
        b"",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&s, &["logs", "cli/sleep", "--follow"], b"").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sleep: 1500 ms"), "{out}");
    let task = s.task(S, "sleep", "t-2").await;
    assert_eq!(task["status"], "Succeeded", "--follow returned before the end: {task}");
    let (code, out) = run(&s, &["logs", "cli/sleep", "--task", "nope"], b"").await;
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn functions_and_services_are_listed_shown_and_deleted() {
    let s = server().await;
    let (code, out) = run(&s, &["services", "list"], b"").await;
    assert!(code == 0 && out.contains("cli"), "{out}");
    let (code, out) = run(&s, &["functions", "list", "cli", "--json"], b"").await;
    assert_eq!(code, 0, "{out}");
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&out)
        .unwrap()
        .iter()
        .map(|f| f["functionName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["fail", "hello", "sleep"]);
    let (code, out) = run(&s, &["functions", "get", "cli/hello"], b"").await;
    assert!(code == 0 && out.contains("hello") && out.contains("128 MB"), "{out}");
    let (code, out) = run(&s, &["functions", "delete", "cli/fail"], b"").await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&s, &["functions", "get", "cli/fail"], b"").await;
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn endpoint_and_keys_come_from_a_profile_file() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("profiles.toml");
    std::fs::write(
        &config,
        format!(
            "[staging]\nendpoint = \"{}\"\naccess_key_id = \"cliAK\"\naccess_key_secret = \"cliSecret\"\n\n\
             [wrong]\nendpoint = \"{}\"\naccess_key_id = \"cliAK\"\naccess_key_secret = \"nope\"\n",
            s.base, s.base
        ),
    )
    .unwrap();
    let profile = |name: &'static str| {
        let config = config.clone();
        async move {
            let out = tokio::process::Command::new(wasmfc_bin())
                .args(["services", "list", "--profile", name])
                .env_remove("WASMFC_ENDPOINT")
                .env_remove("WASMFC_ACCESS_KEY_ID")
                .env_remove("WASMFC_ACCESS_KEY_SECRET")
                .env("WASMFC_CONFIG", &config)
                .output()
                .await
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.code().unwrap_or(-1), text)
        }
    };
    let (code, out) = profile("staging").await;
    assert!(code == 0 && out.contains("cli"), "{out}");
    let (code, out) = profile("wrong").await;
    assert!(code == 2 && out.contains("SignatureNotMatch"), "{out}");
    let (code, out) = profile("missing").await;
    assert!(code == 2 && out.contains("no profile 'missing'"), "{out}");
}
