//! The foundation: services, functions, code uploads, sync invoke and its
//! headers, versions and aliases, and bad input.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use wasmfc_tests::{Server, b64, guests, wasm, zip_of};

#[tokio::test]
async fn create_upload_zip_and_invoke_sync_with_every_header() {
    let s = Server::default().await;
    s.create_service("demo").await;
    let zip = zip_of(&[("README.txt", b"hello"), ("hello.wasm", &wasm(guests::HELLO))]);
    let created = s
        .post_json(
            "/2016-08-15/services/demo/functions",
            json!({
                "functionName": "hello",
                "runtime": "wasm",
                "handler": "hello.wasm",
                "code": { "zipFile": b64(&zip) },
                "environmentVariables": { "GREETING": "Hi" },
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let f = created.json();
    assert_eq!(f["codeSize"], zip.len());
    assert_eq!(f["wasmfc"]["guestKind"], "event-component");
    let checksum = f["codeChecksum"].as_str().unwrap().to_string();
    assert!(
        checksum.parse::<u64>().is_ok(),
        "checksum is a decimal CRC-64: {checksum}"
    );
    assert!(created.header("etag").is_some());

    let r = s.invoke("demo", "hello", "Tokyo", &[("x-fc-log-type", "Tail")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "Hi Tokyo!");
    assert!(r.header("x-fc-request-id").is_some_and(|v| v.len() >= 32));
    assert!(r.header("x-fc-invocation-duration").unwrap().parse::<u64>().is_ok());
    let mem: f64 = r.header("x-fc-max-memory-usage").unwrap().parse().unwrap();
    assert!(mem > 0.0 && mem < 128.0, "peak memory {mem} MB");
    assert_eq!(r.header("x-fc-code-checksum"), Some(checksum.as_str()));
    assert!(r.header("x-fc-instance-id").unwrap().starts_with("inst-"));
    assert_eq!(r.header("x-fc-invocation-service-version"), Some("LATEST"));
    assert!(r.header("x-fc-error-type").is_none());
    let log = base64::engine::general_purpose::STANDARD
        .decode(r.header("x-fc-log-result").expect("log tail"))
        .unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("hello: greeting Tokyo"), "log tail: {log}");
    assert!(
        log.contains(r.header("x-fc-request-id").unwrap()),
        "the guest saw the request id: {log}"
    );

    // Without Tail there is no log header.
    let r = s.invoke("demo", "hello", "", &[("x-fc-invocation-type", "Sync")]).await;
    assert_eq!(r.text(), "Hi world!");
    assert!(r.header("x-fc-log-result").is_none());

    // GetFunctionCode gives a URL that downloads exactly the package.
    let code = s.get("/2016-08-15/services/demo/functions/hello/code").await.json();
    assert_eq!(code["checksum"], checksum);
    let pkg = s.http.get(code["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(pkg.status(), StatusCode::OK);
    assert_eq!(pkg.bytes().await.unwrap().as_ref(), zip.as_slice());
    let forged = code["url"].as_str().unwrap().replace("signature=", "signature=00");
    assert_eq!(s.http.get(forged).send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn raw_application_wasm_upload_creates_and_replaces() {
    let s = Server::default().await;
    s.create_service("raw").await;
    let r = s
        .call(
            Method::PUT,
            "/2016-08-15/services/raw/functions/echo/code",
            wasm(guests::ECHO_WASI),
            &[("content-type", "application/wasm")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["wasmfc"]["guestKind"], "command");
    let r = s.invoke("raw", "echo", "ping", &[]).await;
    assert_eq!(r.text(), "ping");

    // Replacing the code takes effect at once.
    let r = s
        .call(
            Method::PUT,
            "/2016-08-15/services/raw/functions/echo/code",
            wasm(guests::HELLO),
            &[("content-type", "application/wasm")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(s.invoke("raw", "echo", "x", &[]).await.text(), "Hello x!");

    // The wrong content type is refused.
    let r = s
        .call(
            Method::PUT,
            "/2016-08-15/services/raw/functions/echo/code",
            wasm(guests::HELLO),
            &[("content-type", "text/plain")],
        )
        .await;
    r.assert_error(415, "InvalidArgument");
}

#[tokio::test]
async fn wasi_command_gets_event_on_stdin_and_env() {
    let s = Server::default().await;
    s.create_service("p1").await;
    s.create_function(
        "p1",
        "echo",
        guests::ECHO_WASI,
        json!({ "environmentVariables": { "COLOR": "teal" } }),
    )
    .await;
    let r = s
        .invoke("p1", "echo", "stdin bytes \u{1F600}", &[("x-fc-log-type", "Tail")])
        .await;
    assert_eq!(r.text(), "stdin bytes \u{1F600}");
    assert_eq!(s.invoke("p1", "echo", "env:COLOR", &[]).await.text(), "teal");
    // The host environment does not leak in.
    assert_eq!(s.invoke("p1", "echo", "env:PATH", &[]).await.text(), "");
    // A non-zero exit is the guest reporting failure: a handled error.
    let r = s.invoke("p1", "echo", "exit:7", &[]).await;
    assert_eq!(r.header("x-fc-error-type"), Some("HandledInvocationError"));
    assert!(r.json()["errorMessage"].as_str().unwrap().contains("code 7"));
    // Each command invocation is a fresh instance.
    let a = s.invoke("p1", "echo", "a", &[]).await;
    let b = s.invoke("p1", "echo", "b", &[]).await;
    assert_ne!(a.header("x-fc-instance-id"), b.header("x-fc-instance-id"));
}

#[tokio::test]
async fn handled_and_unhandled_errors_as_fc_reports_them() {
    let s = Server::default().await;
    s.create_service("err").await;
    s.create_function("err", "fail", guests::FAIL, json!({})).await;
    s.create_function("err", "trap", guests::TRAP, json!({})).await;
    let r = s.invoke("err", "fail", "x", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-fc-error-type"), Some("HandledInvocationError"));
    assert_eq!(r.json()["errorMessage"], "boom: x");
    let r = s.invoke("err", "trap", "x", &[]).await;
    assert_eq!(r.header("x-fc-error-type"), Some("UnhandledInvocationError"));
    let body = r.json();
    assert_eq!(body["errorType"], "Trap");
    assert!(
        body["errorMessage"].as_str().unwrap().contains("deliberate panic"),
        "{body}"
    );
}

#[tokio::test]
async fn initializer_runs_once_per_instance() {
    let s = Server::default().await;
    s.create_service("init").await;
    s.create_function(
        "init",
        "counter",
        guests::COUNTER,
        json!({ "initializer": "index.init" }),
    )
    .await;
    let first = s.invoke("init", "counter", "", &[]).await.json();
    let second = s.invoke("init", "counter", "", &[]).await.json();
    assert_eq!(first, json!({ "events": 1, "initialized": 1 }));
    assert_eq!(
        second,
        json!({ "events": 2, "initialized": 1 }),
        "warm instance keeps its globals"
    );
    // Without an initializer configured, the hook does not run.
    s.create_function("init", "plain", guests::COUNTER, json!({})).await;
    assert_eq!(s.invoke("init", "plain", "", &[]).await.json()["initialized"], 0);
    // An initializer on code that has none is refused at upload.
    let r = s
        .post_json(
            "/2016-08-15/services/init/functions",
            json!({"functionName": "bad", "runtime": "wasm", "handler": "h", "initializer": "i",
                   "code": {"zipFile": b64(&wasm(guests::ECHO_WASI))}}),
        )
        .await;
    r.assert_error(400, "InvalidArgument");
}

#[tokio::test]
async fn services_functions_crud_and_listing() {
    let s = Server::default().await;
    for name in ["alpha", "beta", "gamma"] {
        s.create_service(name).await;
    }
    let r = s
        .put_json(
            "/2016-08-15/services/beta",
            json!({ "description": "second", "internetAccess": false }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["description"], "second");
    let g = s.get("/2016-08-15/services/beta").await.json();
    assert_eq!(g["internetAccess"], false);

    // Paging: limit 2, then the rest via nextToken.
    let p1 = s.get("/2016-08-15/services?limit=2").await.json();
    assert_eq!(p1["services"].as_array().unwrap().len(), 2);
    let next = p1["nextToken"].as_str().unwrap();
    let p2 = s
        .get(&format!("/2016-08-15/services?limit=2&nextToken={next}"))
        .await
        .json();
    assert_eq!(p2["services"][0]["serviceName"], "gamma");
    assert!(p2["nextToken"].is_null());
    let pre = s.get("/2021-04-06/services?prefix=al").await.json();
    assert_eq!(pre["services"].as_array().unwrap().len(), 1);

    s.create_function(
        "alpha",
        "f1",
        guests::HELLO,
        json!({ "timeout": 10, "memorySize": 256, "description": "d" }),
    )
    .await;
    s.create_function("alpha", "f2", guests::HELLO, json!({})).await;
    let f = s.get("/2016-08-15/services/alpha/functions/f1").await.json();
    assert_eq!((f["timeout"].clone(), f["memorySize"].clone()), (json!(10), json!(256)));
    let r = s
        .put_json(
            "/2016-08-15/services/alpha/functions/f1",
            json!({ "timeout": 20, "InstanceConcurrency": 3 }),
        )
        .await;
    assert_eq!(r.json()["timeout"], 20);
    assert_eq!(r.json()["instanceConcurrency"], 3);
    let list = s
        .get("/2016-08-15/services/alpha/functions?prefix=f&limit=1")
        .await
        .json();
    assert_eq!(list["functions"].as_array().unwrap().len(), 1);
    assert_eq!(list["nextToken"], "f2");

    // A non-empty service cannot be deleted; an emptied one can.
    s.delete("/2016-08-15/services/alpha")
        .await
        .assert_error(400, "ResourceNotEmpty");
    assert_eq!(
        s.delete("/2016-08-15/services/alpha/functions/f1").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.delete("/2016-08-15/services/alpha/functions/f2").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.delete("/2016-08-15/services/alpha").await.status,
        StatusCode::NO_CONTENT
    );
    s.get("/2016-08-15/services/alpha")
        .await
        .assert_error(404, "ServiceNotFound");

    // If-Match with a stale etag is refused.
    s.call(
        Method::PUT,
        "/2016-08-15/services/beta",
        r#"{"description":"x"}"#,
        &[("if-match", "stale")],
    )
    .await
    .assert_error(412, "PreconditionFailed");
}

#[tokio::test]
async fn versions_and_aliases_resolve_qualifiers() {
    let s = Server::default().await;
    s.create_service("v").await;
    s.create_function(
        "v",
        "f",
        guests::HELLO,
        json!({ "environmentVariables": { "GREETING": "One" } }),
    )
    .await;
    let v1 = s
        .post_json("/2016-08-15/services/v/versions", json!({ "description": "first" }))
        .await
        .json();
    assert_eq!(v1["versionId"], "1");
    s.put_json(
        "/2016-08-15/services/v/functions/f",
        json!({ "environmentVariables": { "GREETING": "Two" } }),
    )
    .await;
    let v2 = s.post_json("/2016-08-15/services/v/versions", json!({})).await.json();
    assert_eq!(v2["versionId"], "2");
    let alias = s
        .post_json(
            "/2016-08-15/services/v/aliases",
            json!({ "aliasName": "prod", "versionId": "1", "description": "p" }),
        )
        .await;
    assert_eq!(alias.status, StatusCode::OK, "{}", alias.text());

    // Qualifier in the path (2016) and in the query (2021) mean the same.
    let r = s.invoke("v.prod", "f", "x", &[]).await;
    assert_eq!(r.text(), "One x!");
    assert_eq!(r.header("x-fc-invocation-service-version"), Some("1"));
    let r = s
        .call(
            Method::POST,
            "/2021-04-06/services/v/functions/f/invocations?qualifier=2",
            "x",
            &[],
        )
        .await;
    assert_eq!(r.text(), "Two x!");
    assert_eq!(r.header("x-fc-invocation-service-version"), Some("2"));
    assert_eq!(s.invoke("v.LATEST", "f", "x", &[]).await.text(), "Two x!");
    assert_eq!(
        s.get("/2016-08-15/services/v.1/functions/f").await.json()["environmentVariables"]["GREETING"],
        "One"
    );

    // Versions list newest first by default.
    let list = s.get("/2016-08-15/services/v/versions").await.json();
    assert_eq!(list["versions"][0]["versionId"], "2");
    assert_eq!(list["direction"], "BACKWARD");

    // Move the alias; delete a version in use is refused.
    let r = s
        .put_json("/2016-08-15/services/v/aliases/prod", json!({ "versionId": "2" }))
        .await;
    assert_eq!(r.json()["versionId"], "2");
    assert_eq!(s.invoke("v.prod", "f", "x", &[]).await.text(), "Two x!");
    s.delete("/2016-08-15/services/v/versions/2")
        .await
        .assert_error(400, "InvalidArgument");
    assert_eq!(
        s.delete("/2016-08-15/services/v/versions/1").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get("/2016-08-15/services/v/aliases").await.json()["aliases"][0]["aliasName"],
        "prod"
    );

    // Unknown qualifiers are 404s.
    s.invoke("v.nope", "f", "x", &[])
        .await
        .assert_error(404, "AliasNotFound");
    s.invoke("v.9", "f", "x", &[])
        .await
        .assert_error(404, "VersionNotFound");
    s.post_json(
        "/2016-08-15/services/v/aliases",
        json!({ "aliasName": "bad", "versionId": "77" }),
    )
    .await
    .assert_error(404, "VersionNotFound");
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_nothing_is_stored() {
    let s = Server::default().await;
    s.create_service("bad").await;
    let create = |name: &str, code: String, handler: &str| json!({"functionName": name, "runtime": "wasm", "handler": handler, "code": {"zipFile": code}});

    // Invalid wasm: the compiler's message.
    let r = s
        .post_json(
            "/2016-08-15/services/bad/functions",
            create("f", b64(b"\0asm\x01\0\0\0\x01\xff"), "h"),
        )
        .await;
    r.assert_error(400, "InvalidArgument");
    assert!(r.json()["ErrorMessage"].as_str().unwrap().contains("invalid module"));
    s.get("/2016-08-15/services/bad/functions/f")
        .await
        .assert_error(404, "FunctionNotFound");

    // A zip without the named .wasm.
    let zip = zip_of(&[("a.wasm", &wasm(guests::HELLO)), ("b.wasm", &wasm(guests::HELLO))]);
    let r = s
        .post_json("/2016-08-15/services/bad/functions", create("f", b64(&zip), "c.wasm"))
        .await;
    r.assert_error(400, "InvalidArgument");
    let r = s
        .post_json(
            "/2016-08-15/services/bad/functions",
            create("f", b64(&zip_of(&[("x.txt", b"no")])), "h"),
        )
        .await;
    r.assert_error(400, "InvalidArgument");
    // Not base64, not a package.
    s.post_json("/2016-08-15/services/bad/functions", create("f", "%%%".into(), "h"))
        .await
        .assert_error(400, "InvalidArgument");
    s.post_json(
        "/2016-08-15/services/bad/functions",
        create("f", b64(b"plain text"), "h"),
    )
    .await
    .assert_error(400, "InvalidArgument");
    assert_eq!(
        s.get("/2016-08-15/services/bad/functions").await.json()["functions"],
        json!([])
    );

    // Malformed JSON, wrong types, out-of-range settings, wrong runtime.
    s.call(Method::POST, "/2016-08-15/services", "{not json", &[])
        .await
        .assert_error(400, "InvalidArgument");
    s.post_json("/2016-08-15/services", json!({ "serviceName": 5 }))
        .await
        .assert_error(400, "InvalidArgument");
    let mut body = create("f", b64(&wasm(guests::HELLO)), "h");
    body["timeout"] = json!(0);
    s.post_json("/2016-08-15/services/bad/functions", body.clone())
        .await
        .assert_error(400, "InvalidArgument");
    body["timeout"] = json!(3);
    body["runtime"] = json!("python3.9");
    s.post_json("/2016-08-15/services/bad/functions", body)
        .await
        .assert_error(400, "InvalidArgument");

    // FC's naming rules.
    for name in ["1abc", "-abc", "a b", "a.b", "", &"x".repeat(129)] {
        s.post_json("/2016-08-15/services", json!({ "serviceName": name }))
            .await
            .assert_error(400, "InvalidArgument");
    }
    s.post_json(
        "/2016-08-15/services/bad/functions",
        create(&"f".repeat(65), b64(&wasm(guests::HELLO)), "h"),
    )
    .await
    .assert_error(400, "InvalidArgument");

    // Unknown service/function/qualifier.
    s.get("/2016-08-15/services/nope")
        .await
        .assert_error(404, "ServiceNotFound");
    s.invoke("nope", "f", "", &[])
        .await
        .assert_error(404, "ServiceNotFound");
    s.invoke("bad", "nope", "", &[])
        .await
        .assert_error(404, "FunctionNotFound");
    s.invoke("bad.staging", "nope", "", &[])
        .await
        .assert_error(404, "AliasNotFound");
    s.get("/2016-08-15/services/bad/functions/nope/code")
        .await
        .assert_error(404, "FunctionNotFound");

    // Duplicates.
    s.post_json("/2016-08-15/services", json!({ "serviceName": "bad" }))
        .await
        .assert_error(409, "ServiceAlreadyExists");
    s.create_function("bad", "once", guests::HELLO, json!({})).await;
    s.post_json(
        "/2016-08-15/services/bad/functions",
        create("once", b64(&wasm(guests::HELLO)), "h"),
    )
    .await
    .assert_error(409, "FunctionAlreadyExists");

    // A sync event over 6 MB.
    let big = vec![b'x'; 6 * 1024 * 1024 + 1];
    s.invoke("bad", "once", big, &[])
        .await
        .assert_error(413, "EntityTooLarge");
    // Just under the limit is fine.
    let r = s.invoke("bad", "once", vec![b'y'; 1024 * 1024], &[]).await;
    assert_eq!(r.status, StatusCode::OK);

    // Unknown routes and methods still answer FC-style JSON.
    s.get("/2016-08-15/nothing-here")
        .await
        .assert_error(404, "PathNotSupported");
    s.call(Method::PATCH, "/2016-08-15/services", "", &[])
        .await
        .assert_error(405, "MethodNotAllowed");
    s.call(
        Method::POST,
        "/2016-08-15/services/bad/functions/once/invocations",
        "",
        &[("x-fc-invocation-type", "Later")],
    )
    .await
    .assert_error(400, "InvalidArgument");
}
