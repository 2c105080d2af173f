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
