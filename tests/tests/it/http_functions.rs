//! HTTP functions: `wasi:http/proxy` components behind FC HTTP triggers,
//! driven over real HTTP through `/2016-08-15/proxy/...`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Server, ServerOptions, guests, sign_fc};

const TRIGGERS: &str = "/2016-08-15/services/web/functions";

async fn deploy(s: &Server, function: &str, guest: &str, extra: Value, config: Value) {
    s.create_function("web", function, guest, extra).await;
    let r = s
        .post_json(
            &format!("{TRIGGERS}/{function}/triggers"),
            json!({"triggerName": "web", "triggerType": "http", "triggerConfig": config, "qualifier": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "create trigger: {}", r.text());
}

#[tokio::test]
async fn requests_reach_the_component_and_its_response_comes_back() {
    let s = Server::default().await;
    s.create_service("web").await;
    let config = json!({"authType": "anonymous", "methods": ["GET", "POST", "PUT"]});
    deploy(&s, "hello", guests::HTTP_HELLO, json!({}), config).await;
    let f = s.get(&format!("{TRIGGERS}/hello")).await.json();
    assert_eq!(f["wasmfc"]["guestKind"], "http-component", "{f}");

    for method in [Method::GET, Method::POST, Method::PUT] {
        let r = s
            .call(
                method.clone(),
                "/2016-08-15/proxy/web/hello/a/b%20c?x=1&status=201",
                "payload",
                &[("x-custom", "v1")],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{method}: {}", r.text());
        assert_eq!(r.header("x-wasmfc-guest"), Some("http-hello"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("x-fc-request-id").is_some());
        assert!(r.header("x-fc-instance-id").is_some_and(|i| i.starts_with("inst-")));
        assert_eq!(r.header("x-fc-invocation-service-version"), Some("LATEST"));
        let body = r.json();
        assert_eq!(body["method"], method.as_str());
        assert_eq!(body["path"], "/a/b%20c");
        assert_eq!(body["query"], "x=1&status=201");
        assert_eq!(body["headers"]["x-custom"], "v1");
    }
    // X-Fc-Log-Type: Tail returns what the guest logged before answering.
    let r = s
        .call(
            Method::GET,
            "/2016-08-15/proxy/web/hello/logged",
            Vec::new(),
            &[("x-fc-log-type", "Tail")],
        )
        .await;
    let tail = r.header("x-fc-log-result").expect("X-Fc-Log-Result");
    use base64::Engine as _;
    let tail = base64::engine::general_purpose::STANDARD
        .decode(tail)
        .expect("base64 log");
    assert!(
        String::from_utf8_lossy(&tail).contains("http-hello: GET /logged"),
        "{}",
        String::from_utf8_lossy(&tail)
    );

    let root = s.get("/2016-08-15/proxy/web/hello").await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.text());
    assert_eq!(root.json()["path"], "/");

    // Methods the trigger does not list: 405 with an FC error.
    s.call(Method::DELETE, "/2016-08-15/proxy/web/hello/x", Vec::new(), &[])
        .await
        .assert_error(405, "MethodNotAllowed");
    // An event function has no business behind an HTTP trigger.
    s.create_function("web", "event", guests::HELLO, json!({})).await;
    let r = s
        .post_json(
            &format!("{TRIGGERS}/event/triggers"),
            json!({"triggerName": "t", "triggerType": "http", "triggerConfig": {"methods": ["GET"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    s.get("/2016-08-15/proxy/web/event/")
        .await
        .assert_error(400, "InvalidArgument");
    // ... and an HTTP function is not invoked with InvokeFunction.
    let r = s.invoke("web", "hello", "x", &[]).await;
    assert_eq!(
        r.header("x-fc-error-type"),
        Some("HandledInvocationError"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn trigger_crud_and_validation() {
    let s = Server::default().await;
    s.create_service("web").await;
    deploy(&s, "hello", guests::HTTP_HELLO, json!({}), json!({"methods": ["GET"]})).await;
    let t = s.get(&format!("{TRIGGERS}/hello/triggers/web")).await;
    assert_eq!(t.status, StatusCode::OK);
    assert!(t.header("etag").is_some());
    let doc = t.json();
    assert_eq!(doc["triggerType"], "http");
    assert_eq!(doc["triggerConfig"]["authType"], "anonymous");
    assert_eq!(doc["qualifier"], "LATEST");
    assert!(doc["triggerId"].as_str().is_some_and(|id| !id.is_empty()));

    let list = s.get(&format!("{TRIGGERS}/hello/triggers")).await.json();
    assert_eq!(list["triggers"].as_array().map(Vec::len), Some(1), "{list}");

    // The 2021 SDK sends triggerConfig as a string of JSON.
    let r = s
        .put_json(
            &format!("{TRIGGERS}/hello/triggers/web"),
            json!({"triggerConfig": "{\"authType\": \"anonymous\", \"methods\": [\"POST\"]}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["triggerConfig"]["methods"], json!(["POST"]));
    s.get("/2016-08-15/proxy/web/hello/")
        .await
        .assert_error(405, "MethodNotAllowed");

    for (body, code) in [
        (
            json!({"triggerName": "web", "triggerType": "http", "triggerConfig": {"methods": ["GET"]}}),
            "TriggerAlreadyExists",
        ),
        (
            json!({"triggerName": "t2", "triggerType": "timer", "triggerConfig": {}}),
            "InvalidArgument",
        ),
        (
            json!({"triggerName": "t2", "triggerType": "http", "triggerConfig": {"methods": []}}),
            "InvalidArgument",
        ),
        (
            json!({"triggerName": "t2", "triggerType": "http", "triggerConfig": {"methods": ["GET"], "authType": "x"}}),
            "InvalidArgument",
        ),
        (
            json!({"triggerName": "t2", "triggerType": "http", "triggerConfig": "not json"}),
            "InvalidArgument",
        ),
        (
            json!({"triggerName": "t2", "triggerType": "http", "triggerConfig": {"methods": ["GET"]}, "qualifier": "nope"}),
            "AliasNotFound",
        ),
    ] {
        let r = s.post_json(&format!("{TRIGGERS}/hello/triggers"), body.clone()).await;
        let status = if code == "TriggerAlreadyExists" {
            409
        } else if code == "AliasNotFound" {
            404
        } else {
            400
        };
        r.assert_error(status, code);
    }
    s.get(&format!("{TRIGGERS}/nope/triggers"))
        .await
        .assert_error(404, "FunctionNotFound");

    let r = s.delete(&format!("{TRIGGERS}/hello/triggers/web")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    s.get(&format!("{TRIGGERS}/hello/triggers/web"))
        .await
        .assert_error(404, "TriggerNotFound");
    s.call(Method::POST, "/2016-08-15/proxy/web/hello/", Vec::new(), &[])
        .await
        .assert_error(404, "TriggerNotFound");
}

#[tokio::test]
async fn a_five_megabyte_body_streams_through_and_back() {
    let s = Server::default().await;
    s.create_service("web").await;
    deploy(
        &s,
        "echo",
        guests::HTTP_ECHO,
        json!({"timeout": 60}),
        json!({"methods": ["POST"]}),
    )
    .await;
    let payload: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    // Sent in 64 KB chunks with chunked transfer encoding: a stream, not
    // one buffer with a length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = payload.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let resp = s
        .http
        .post(s.url("/2016-08-15/proxy/web/echo/upload"))
        .header("content-type", "application/x-test")
        .body(body)
        .send()
        .await
        .expect("echo request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-test")
    );
    let echoed = resp.bytes().await.expect("echo body");
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed[..] == payload[..], "the echoed body differs");
}

#[tokio::test]
async fn a_trap_or_timeout_is_a_502_and_the_server_keeps_serving() {
    let s = Server::default().await;
    s.create_service("web").await;
    deploy(
        &s,
        "hello",
        guests::HTTP_HELLO,
        json!({"timeout": 1}),
        json!({"methods": ["GET"]}),
    )
    .await;
    let r = s.get("/2016-08-15/proxy/web/hello/trap").await;
    r.assert_error(502, "UnhandledInvocationError");
    assert!(r.text().contains("asked to trap"), "{}", r.text());
    let started = std::time::Instant::now();
    let r = s.get("/2016-08-15/proxy/web/hello/loop").await;
    r.assert_error(502, "FunctionTimeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    let ok = s.get("/2016-08-15/proxy/web/hello/after").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["path"], "/after");
}

/// `authType: function`: 401 without a signature, 403 with a wrong one,
/// 200 when signed as aliyun-fc2's `do_http_request` signs (the query's
/// sorted `k=v` lines after the decoded path).
#[tokio::test]
async fn function_auth_requires_a_valid_signature() {
    let (ak, sk) = ("trigAK", "trigSecret");
    let s = Server::start(ServerOptions::default().with_credentials(ak, sk)).await;
    s.create_service("web").await;
    deploy(
        &s,
        "hello",
        guests::HTTP_HELLO,
        json!({}),
        json!({"authType": "function", "methods": ["GET"]}),
    )
    .await;
    let path = "/2016-08-15/proxy/web/hello/a%20b";
    let url = s.url(&format!("{path}?b=2&a=1"));

    let unsigned = s.http.get(&url).send().await.expect("unsigned");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);

    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let resource = "/2016-08-15/proxy/web/hello/a b\na=1\nb=2";
    let good = sign_fc(ak, sk, "GET", resource, "text/plain", &date, &[]);
    let bad = sign_fc(ak, "wrong-secret", "GET", resource, "text/plain", &date, &[]);
    let send = |auth: String| {
        s.http
            .get(&url)
            .header("date", &date)
            .header("content-type", "text/plain")
            .header("authorization", auth)
            .send()
    };
    let r = send(bad).await.expect("badly signed");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = send(good).await.expect("signed");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["path"], "/a%20b");

    // An anonymous trigger on the same signed server needs no signature.
    deploy(
        &s,
        "open",
        guests::HTTP_HELLO,
        json!({}),
        json!({"authType": "anonymous", "methods": ["GET"]}),
    )
    .await;
    let r = s
        .http
        .get(s.url("/2016-08-15/proxy/web/open/"))
        .send()
        .await
        .expect("anonymous");
    assert_eq!(r.status(), StatusCode::OK);
}

/// A wasi:http component this repository did not write — the published
/// `wasip2` crate's `http-proxy` example, built unchanged by tests/build.rs
/// — runs as an HTTP function.
#[tokio::test]
async fn a_published_crates_http_example_runs_unchanged() {
    let s = Server::default().await;
    s.create_service("web").await;
    deploy(
        &s,
        "external",
        guests::EXTERNAL_HTTP_PROXY,
        json!({}),
        json!({"methods": ["GET"]}),
    )
    .await;
    let r = s.get("/2016-08-15/proxy/web/external/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "Hello, WASI!");
}

/// `X-Fc-Invocation-Type: Async` through the trigger: the request is
/// recorded as a task (visible in ListStatefulAsyncInvocations with the
/// guest's response as its result), and a re-run replays the recorded
/// request (FC cannot re-run HTTP tasks; wasmfc can).
#[tokio::test]
async fn async_requests_become_tasks_whose_rerun_replays_the_request() {
    let s = Server::default().await;
    s.create_service("web").await;
    deploy(&s, "hello", guests::HTTP_HELLO, json!({}), json!({"methods": ["POST"]})).await;
    s.task_mode("web", "hello", json!({})).await;
    let r = s
        .call(
            Method::POST,
            "/2016-08-15/proxy/web/hello/job?n=1",
            "recorded body",
            &[
                ("x-fc-invocation-type", "Async"),
                ("x-fc-stateful-async-invocation-id", "job-1"),
                ("x-trace", "t1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.header("x-fc-stateful-async-invocation-id"), Some("job-1"));

    let task = s
        .wait_status("web", "hello", "job-1", "Succeeded", Duration::from_secs(10))
        .await;
    let result: Value = serde_json::from_str(task["returnPayload"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("result is not JSON ({e}): {task}"));
    assert_eq!(result["status"], 200, "{result}");
    let body: Value = serde_json::from_str(result["body"].as_str().unwrap_or_default()).expect("guest JSON");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/job");
    assert_eq!(body["query"], "n=1");
    assert_eq!(body["headers"]["x-trace"], "t1");

    let list = s
        .get("/2016-08-15/services/web/functions/hello/stateful-async-invocations")
        .await
        .json();
    let ids: Vec<&str> = list["invocations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["invocationId"].as_str())
        .collect();
    assert_eq!(ids, ["job-1"], "{list}");

    let r = s
        .call(
            Method::POST,
            "/2016-08-15/services/web/functions/hello/stateful-async-invocations/job-1/rerun",
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let again = r.json()["invocationId"].as_str().unwrap().to_string();
    assert_ne!(again, "job-1");
    let rerun = s
        .wait_status("web", "hello", &again, "Succeeded", Duration::from_secs(10))
        .await;
    let replayed: Value = serde_json::from_str(rerun["returnPayload"].as_str().unwrap_or_default()).unwrap();
    let body: Value = serde_json::from_str(replayed["body"].as_str().unwrap_or_default()).expect("guest JSON");
    assert_eq!(body["path"], "/job", "{body}");
    assert_eq!(body["query"], "n=1", "{body}");
    assert_eq!(body["headers"]["x-trace"], "t1", "{body}");
}

/// An HTTP function's instance serves the next request (`warm`, the same
/// instance, its globals kept); one that trapped is dropped; with
/// `freshInstancePerRequest` every request gets a new instance.
#[tokio::test]
async fn an_http_functions_instance_is_reused_until_it_fails() {
    let s = Server::default().await;
    s.create_service("web").await;
    deploy(&s, "hello", guests::HTTP_HELLO, json!({}), json!({"methods": ["GET"]})).await;
    let facts = |r: &wasmfc_tests::Reply| {
        (
            r.header("x-fc-start-type").unwrap_or("").to_string(),
            r.header("x-fc-instance-id").unwrap_or("").to_string(),
            r.header("x-wasmfc-served").unwrap_or("").to_string(),
        )
    };
    let first = s.get("/2016-08-15/proxy/web/hello/a").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let (start, id, served) = facts(&first);
    assert_eq!((start.as_str(), served.as_str()), ("cold", "1"));
    // The instance goes back once the guest has finished the body.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let second = loop {
        let r = s.get("/2016-08-15/proxy/web/hello/b").await;
        if facts(&r).0 == "warm" || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(facts(&second), ("warm".to_string(), id.clone(), "2".to_string()));

    // A trap drops the instance: the next request starts a new one.
    s.get("/2016-08-15/proxy/web/hello/trap")
        .await
        .assert_error(502, "UnhandledInvocationError");
    let after = s.get("/2016-08-15/proxy/web/hello/c").await;
    let (start, new_id, served) = facts(&after);
    assert_eq!((start.as_str(), served.as_str()), ("cold", "1"), "{}", after.text());
    assert_ne!(new_id, id);

    // The opt-out: a fresh instance for every request.
    deploy(
        &s,
        "fresh",
        guests::HTTP_HELLO,
        json!({"freshInstancePerRequest": true}),
        json!({"methods": ["GET"]}),
    )
    .await;
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let r = s.get("/2016-08-15/proxy/web/fresh/x").await;
        let (start, id, served) = facts(&r);
        assert_eq!((start.as_str(), served.as_str()), ("cold", "1"), "{}", r.text());
        ids.insert(id);
    }
    assert_eq!(ids.len(), 3);
}
