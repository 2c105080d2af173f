//! FC 3.0 (`/2023-03-30`) bad input, over plain HTTP: each a 4xx in 3.0's
//! error shape (`Code`, `Message`, `RequestId`) with nothing stored.

use serde_json::{Value, json};
use wasmfc_tests::{Reply, Server, b64, guests, wasm};

const API: &str = "/2023-03-30";

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["Code"], code, "{body}");
    assert!(body["Message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    let id = body["RequestId"].as_str().unwrap_or_default();
    assert!(!id.is_empty() && r.header("x-fc-request-id") == Some(id), "{body}");
}

async fn create(s: &Server, name: &str, guest: &str) -> Reply {
    s.post_json(
        &format!("{API}/functions"),
        json!({ "functionName": name, "runtime": "wasm", "handler": "h", "code": { "zipFile": b64(&wasm(guest)) } }),
    )
    .await
}

async fn function_names(s: &Server) -> Vec<String> {
    let r = s.get(&format!("{API}/functions")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    r.json()["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["functionName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_in_the_fc3_shape_and_stores_nothing() {
    let s = Server::default().await;
    assert_eq!(create(&s, "sleep", guests::SLEEP).await.status.as_u16(), 200);

    // Unknown function and qualifier.
    assert_error(&s.get(&format!("{API}/functions/nope")).await, 404, "FunctionNotFound");
    assert_error(
        &s.get(&format!("{API}/functions/nope/async-tasks")).await,
        404,
        "FunctionNotFound",
    );
    let r = s
        .call(
            reqwest::Method::POST,
            &format!("{API}/functions/sleep/invocations?qualifier=nope"),
            "1",
            &[],
        )
        .await;
    assert_error(&r, 404, "AliasNotFound");

    // A bad task id: refused, and no task is stored under any id.
    let r = s
        .call(
            reqwest::Method::POST,
            &format!("{API}/functions/sleep/invocations"),
            "1",
            &[("x-fc-invocation-type", "Async"), ("x-fc-async-task-id", "no spaces!")],
        )
        .await;
    assert_error(&r, 400, "InvalidArgument");
    assert_error(
        &s.get(&format!("{API}/functions/sleep/async-tasks/no-such")).await,
        404,
        "AsyncTaskNotFound",
    );

    // `limit` out of range.
    for limit in ["0", "101", "many"] {
        let r = s.get(&format!("{API}/functions/sleep/async-tasks?limit={limit}")).await;
        assert_error(&r, 400, "InvalidArgument");
    }

    // A bad `asyncTask` type: refused, no config stored.
    let r = s
        .put_json(
            &format!("{API}/functions/sleep/async-invoke-config"),
            json!({ "asyncTask": "yes" }),
        )
        .await;
    assert_error(&r, 400, "InvalidArgument");
    let r = s.get(&format!("{API}/functions/sleep/async-invoke-config")).await;
    assert_error(&r, 404, "AsyncConfigNotExists");

    // Invalid wasm, malformed JSON, a bad time zone: nothing created.
    let r = s
        .post_json(
            &format!("{API}/functions"),
            json!({ "functionName": "bad", "runtime": "wasm", "code": { "zipFile": b64(b"\0asm\x01\0\0\0junk") } }),
        )
        .await;
    assert_error(&r, 400, "InvalidArgument");
    let r = s
        .call(
            reqwest::Method::POST,
            &format!("{API}/functions"),
            "{not json",
            &[("content-type", "application/json")],
        )
        .await;
    assert_error(&r, 400, "InvalidArgument");
    assert_eq!(function_names(&s).await, ["sleep"]);
    let r = s
        .put_json(
            &format!("{API}/functions/sleep/concurrency"),
            json!({ "reservedConcurrency": -1 }),
        )
        .await;
    assert_error(&r, 400, "InvalidArgument");
    assert_error(
        &s.get(&format!("{API}/functions/sleep/concurrency")).await,
        404,
        "ConcurrencyConfigNotFound",
    );

    // A name taken on either API is taken on both.
    assert_error(&create(&s, "sleep", guests::SLEEP).await, 409, "FunctionAlreadyExists");
    let r = s
        .post_json("/2021-04-06/services", json!({ "serviceName": "sleep" }))
        .await;
    assert_error(&r, 409, "ServiceAlreadyExists");
}

#[tokio::test]
async fn a_3_0_function_is_a_2_0_service_and_function_and_deletes_with_its_versions() {
    let s = Server::default().await;
    assert_eq!(create(&s, "hello", guests::HELLO).await.status.as_u16(), 200);
    let r = s.post_json(&format!("{API}/functions/hello/versions"), json!({})).await;
    assert_eq!(r.json()["versionId"], "1", "{}", r.text());
    let v2: Value = s.get("/2021-04-06/services/hello/functions/hello").await.json();
    assert_eq!(v2["functionName"], "hello", "{v2}");
    let v3: Value = s.get(&format!("{API}/functions/hello")).await.json();
    assert_eq!(v3["functionArn"], "acs:fc:local:local:functions/hello", "{v3}");
    assert_eq!(v3["codeChecksum"], v2["codeChecksum"]);

    // A 2.0 function in a shared service is `service$function` in 3.0.
    s.create_service("shared").await;
    s.create_function("shared", "one", guests::HELLO, json!({})).await;
    s.create_function("shared", "two", guests::HELLO, json!({})).await;
    let names = function_names(&s).await;
    assert_eq!(names, ["hello", "shared$one", "shared$two"]);
    let r = s
        .call(
            reqwest::Method::POST,
            &format!("{API}/functions/shared%24one/invocations"),
            "Ada",
            &[],
        )
        .await;
    assert_eq!(r.text(), "Hello Ada!");

    // Deleting the 3.0 function removes its service, versions included;
    // deleting one of two leaves the service.
    assert_eq!(s.delete(&format!("{API}/functions/hello")).await.status.as_u16(), 204);
    assert_error(&s.get("/2021-04-06/services/hello").await, 404, "ServiceNotFound");
    assert_eq!(
        s.delete(&format!("{API}/functions/shared%24one")).await.status.as_u16(),
        204
    );
    assert_eq!(function_names(&s).await, ["shared$two"]);
}

/// The CLI takes a 3.0 name for `--function` (no `--service`), and the
/// console shows a 3.0 function with its 3.0 name.
#[tokio::test]
async fn the_cli_and_console_take_fc3_functions() {
    let s = Server::default().await;
    assert_eq!(create(&s, "nap", guests::SLEEP).await.status.as_u16(), 200);
    let r = s
        .put_json(
            &format!("{API}/functions/nap/async-invoke-config"),
            json!({ "asyncTask": true }),
        )
        .await;
    assert_eq!(r.json()["asyncTask"], true, "{}", r.text());
    let r = s
        .call(
            reqwest::Method::POST,
            &format!("{API}/functions/nap/invocations"),
            "10",
            &[("x-fc-invocation-type", "Async"), ("x-fc-async-task-id", "cli-1")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text());
    assert_eq!(r.header("x-fc-async-task-id"), Some("cli-1"));
    s.wait_status("nap", "nap", "cli-1", "Succeeded", std::time::Duration::from_secs(30))
        .await;

    let (ok, out) = s.cli(&["tasks", "list", "-f", "nap", "--json"]).await;
    assert!(ok && out.contains("cli-1"), "{out}");
    let (ok, out) = s.cli(&["tasks", "get", "-f", "nap", "cli-1"]).await;
    assert!(ok && out.contains("Succeeded"), "{out}");

    let page = reqwest::get(s.url("/console/services/nap/functions/nap"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<dd id="fc3-name">nap</dd>"#), "{page}");
}
