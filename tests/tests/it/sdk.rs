//! The official Python SDKs, unchanged, against the server with
//! credentials configured and signatures verified.

use wasmfc_tests::{Server, ServerOptions, run_python};

fn signed() -> ServerOptions {
    ServerOptions::default().with_credentials("testAK", "testSecret-0123456789")
}

#[tokio::test]
async fn aliyun_fc2_works_unchanged() {
    let s = Server::start(signed()).await;
    let out = run_python("fc2_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test]
async fn alibabacloud_fc_open20210406_works_unchanged() {
    let s = Server::start(signed()).await;
    let out = run_python("open_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test]
async fn task_mode_through_alibabacloud_fc_open20210406() {
    let s = Server::start(signed().arg("--retry-base-delay-ms").arg("50")).await;
    let out = run_python("open_tasks_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test]
async fn task_mode_through_aliyun_fc2() {
    let s = Server::start(signed()).await;
    let out = run_python("fc2_tasks_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test]
async fn provision_config_through_both_sdks() {
    let s = Server::start(signed()).await;
    let out = run_python("provision_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test]
async fn http_triggers_through_both_sdks() {
    let s = Server::start(signed()).await;
    let out = run_python("http_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

/// The `azure-functions-durable` client needs no signature (its rpcBaseUrl
/// is a loopback endpoint), so this server runs without credentials.
#[tokio::test]
async fn orchestrations_through_azure_functions_durable() {
    let s = wasmfc_tests::Server::default().await;
    let out = run_python("durable_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}
