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
async fn alibabacloud_fc20230330_works_unchanged() {
    let s = Server::start(signed()).await;
    let out = run_python("fc3_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test]
async fn tasks_cross_between_fc2_and_fc3_sdks() {
    let s = Server::start(signed()).await;
    let out = run_python("fc3_cross_test.py", &s, &[]).await;
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

#[tokio::test]
async fn both_sdks_work_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let s = Server::start(
        signed()
            .arg(format!("--tls-cert={}", cert_path.display()))
            .arg(format!("--tls-key={}", key_path.display())),
    )
    .await;
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let ca = cert_path.display().to_string();
    let out = run_python("tls_test.py", &s, &[("REQUESTS_CA_BUNDLE", &ca)]).await;
    assert!(out.contains("all checks passed"), "{out}");
}

#[tokio::test]
async fn list_instances_through_alibabacloud_fc_open20210406() {
    let s = Server::start(signed()).await;
    let out = run_python("instances_test.py", &s, &[]).await;
    assert!(out.contains("all checks passed"), "{out}");
}
