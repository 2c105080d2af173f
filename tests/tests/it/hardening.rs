//! Hardening: what an attacker or a heavy user tried, each defect pinned by
//! a test that failed on the server before its fix.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Server, ServerOptions, b64, content_md5, guests, raw_exchange, raw_json_body, wasm, zip_of};

/// `wasm` with a custom section of `len` bytes appended: a valid module
/// (or component) of any size. The bytes are pseudo-random, so a zip of
/// it stays as large.
fn padded(wasm: &[u8], len: usize) -> Vec<u8> {
    let name = b"padding";
    let mut payload = Vec::with_capacity(len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while payload.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        payload.extend_from_slice(&x.to_le_bytes());
    }
    payload.truncate(len);
    let mut section = leb128(name.len() as u64);
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.extend(leb128(section.len() as u64));
    out.extend(section);
    out
}

fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test]
async fn large_modules_and_events_get_through_every_path() {
    let s = Server::default().await;
    s.create_service("big").await;
    let module = padded(&wasm(guests::ECHO_WASI), 20 << 20);
    // Raw upload of a 20 MB module.
    s.create_function("big", "echo", guests::ECHO_WASI, json!({})).await;
    let r = s
        .call(
            Method::PUT,
            "/2016-08-15/services/big/functions/echo/code",
            module.clone(),
            &[("content-type", "application/wasm")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "raw 20 MB upload: {}", r.text());
    // The same module base64-in-zip in CreateFunction (a ~27 MB body).
    let body = json!({
        "functionName": "echo2", "runtime": "wasm", "handler": "echo.wasm",
        "code": { "zipFile": b64(&zip_of(&[("echo.wasm", &module)])) },
    });
    let r = s.post_json("/2016-08-15/services/big/functions", body).await;
    assert_eq!(r.status, StatusCode::OK, "zipped 20 MB upload: {}", r.text());
    // A 5 MB event through the front's matcher and through the router (a
    // percent-escaped name is left to the router).
    let event = vec![b'e'; 5 << 20];
    for path in [
        "/2016-08-15/services/big/functions/echo/invocations",
        "/2016-08-15/services/big/functions/%65cho/invocations",
    ] {
        let r = s.call(Method::POST, path, event.clone(), &[]).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{path}: {}",
            &r.text()[..r.text().len().min(300)]
        );
        assert_eq!(r.body.len(), event.len(), "{path}");
    }
    // Past our own limit the answer is ours, in FC's shape.
    let r = s
        .call(
            Method::POST,
            "/2016-08-15/services/big/functions/%65cho/invocations",
            vec![b'e'; 7 << 20],
            &[],
        )
        .await;
    r.assert_error(413, "EntityTooLarge");
}

#[tokio::test]
async fn content_md5_is_compared_with_the_body() {
    let s = Server::start(ServerOptions::default().with_credentials("ak", "sk")).await;
    s.create_service("md5").await;
    s.create_function("md5", "hello", guests::HELLO, json!({})).await;
    let md5 = content_md5(b"Tokyo");
    let r = s
        .invoke("md5", "hello", "Tokyo-tampered", &[("content-md5", &md5)])
        .await;
    r.assert_error(400, "InvalidDigest");
    let r = s.invoke("md5", "hello", "Tokyo", &[("content-md5", &md5)]).await;
    assert_eq!(r.text(), "Hello Tokyo!");
}

#[tokio::test]
async fn beyond_loopback_a_signature_must_bind_the_body() {
    let s = Server::start(
        ServerOptions::default()
            .with_credentials("ak", "sk")
            .listen("0.0.0.0:0"),
    )
    .await;
    // No body: the FC scheme is enough.
    assert_eq!(s.get("/2016-08-15/services").await.status, StatusCode::OK);
    let body = json!({ "serviceName": "far" }).to_string();
    let headers = [("content-type", "application/json")];
    let r = s
        .call(Method::POST, "/2016-08-15/services", body.clone(), &headers)
        .await;
    r.assert_error(403, "AccessDenied");
    assert!(
        r.json()["ErrorMessage"].as_str().unwrap().contains("Content-MD5"),
        "{}",
        r.text()
    );
    let md5 = content_md5(body.as_bytes());
    let headers = [("content-type", "application/json"), ("content-md5", md5.as_str())];
    let r = s.call(Method::POST, "/2016-08-15/services", body, &headers).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn a_function_has_one_http_trigger() {
    let s = Server::default().await;
    s.create_service("web").await;
    s.create_function("web", "hi", guests::HTTP_HELLO, json!({})).await;
    let trigger = |name: &str, auth: &str| {
        json!({"triggerName": name, "triggerType": "http",
               "triggerConfig": {"authType": auth, "methods": ["GET"]}})
    };
    let path = "/2016-08-15/services/web/functions/hi/triggers";
    let r = s.post_json(path, trigger("signed", "function")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    s.post_json(path, trigger("open", "anonymous"))
        .await
        .assert_error(409, "TriggerAlreadyExists");
    // The function stays protected.
    let r = s.get("/2016-08-15/proxy/web/hi/").await;
    r.assert_error(401, "AccessDenied");
}

/// Task ids of a function, with their status and destination status.
async fn tasks_of(s: &Server, function: &str) -> Vec<Value> {
    let r = s
        .get(&format!(
            "/2016-08-15/services/dest/functions/{function}/stateful-async-invocations?limit=100&includePayload=true"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["invocations"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn destinations_neither_loop_nor_grow() {
    let s = Server::default().await;
    s.create_service("dest").await;
    for f in ["a", "b"] {
        s.create_function("dest", f, guests::ECHO_WASI, json!({})).await;
    }
    let config = |to: &str| {
        json!({"statefulInvocation": true, "maxAsyncRetryAttempts": 0,
               "destinationConfig": {"onSuccess": {"destination": format!("acs:fc:::services/dest/functions/{to}")}}})
    };
    let put = |f: &'static str, to: &'static str| {
        let body = config(to);
        let s = &s;
        async move {
            s.put_json(
                &format!("/2016-08-15/services/dest.LATEST/functions/{f}/async-invoke-config"),
                body,
            )
            .await
        }
    };
    put("a", "a").await.assert_error(400, "InvalidArgument");
    assert_eq!(put("a", "b").await.status, StatusCode::OK);
    assert_eq!(put("b", "a").await.status, StatusCode::OK);
    // echo-wasi answers its event: each record holds the one before twice.
    let r = s.invoke_async("dest", "a", vec![b'x'; 100 << 10], Some("start")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (a, b) = loop {
        let (a, b) = (tasks_of(&s, "a").await, tasks_of(&s, "b").await);
        let all: Vec<&Value> = a.iter().chain(&b).collect();
        let ended = all.iter().all(|t| t["status"] == "Succeeded");
        let refused = all
            .iter()
            .any(|t| t["destinationStatus"].as_str().is_some_and(|d| d.starts_with("Failed")));
        if ended && refused {
            break (a, b);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the chain did not end: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The original task and eight hops, alternating a, b, a, ...
    assert_eq!((a.len(), b.len()), (5, 4), "{a:?} {b:?}");
    for t in a.iter().chain(&b) {
        let payload = t["invocationPayload"].as_str().unwrap_or_default();
        assert!(
            payload.len() <= 128 << 10,
            "a destination payload of {} bytes",
            payload.len()
        );
    }
}

#[tokio::test]
async fn a_header_that_is_present_but_not_ascii_is_refused_by_name() {
    let s = Server::default().await;
    s.create_service("hdr").await;
    s.create_function("hdr", "hello", guests::HELLO, json!({})).await;
    s.task_mode("hdr", "hello", json!({})).await;
    let url = s.url("/2016-08-15/services/hdr/functions/hello/invocations");
    let send = |name: &'static str, value: &'static [u8], async_call: bool| {
        let mut req = s
            .http
            .post(url.clone())
            .header(name, reqwest::header::HeaderValue::from_bytes(value).unwrap());
        if async_call {
            req = req.header("x-fc-invocation-type", "Async");
        }
        async move { req.send().await.unwrap() }
    };
    for (name, value, async_call) in [
        ("x-fc-stateful-async-invocation-id", "t\u{e2}sk".as_bytes(), true),
        ("x-fc-invocation-type", "\u{e9}sync".as_bytes(), false),
        ("x-fc-log-type", "T\u{e4}il".as_bytes(), false),
    ] {
        let r = send(name, value, async_call).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["ErrorCode"], "InvalidArgument", "{body}");
        assert!(body["ErrorMessage"].as_str().unwrap().contains(name), "{body}");
    }
    // Nothing was submitted.
    let listed = s
        .get("/2016-08-15/services/hdr/functions/hello/stateful-async-invocations")
        .await
        .json();
    assert_eq!(listed["invocations"].as_array().map_or(0, Vec::len), 0, "{listed}");
}

#[tokio::test]
async fn slow_and_greedy_clients_are_cut_off() {
    let s = Server::start(
        ServerOptions::default()
            .arg("--header-read-timeout-secs=2")
            .arg("--body-idle-timeout-secs=2")
            .arg("--max-connections-per-ip=4"),
    )
    .await;
    // A head that never ends: the connection is closed.
    let (_, closed) = raw_exchange(
        s.port,
        b"POST /2016-08-15/services HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(30),
    )
    .await;
    assert!(closed, "a head that never ended kept its connection");
    // A body that stops arriving: 408 in FC's shape, and the connection closes.
    let head = b"POST /2016-08-15/services HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
    let (answer, closed) = raw_exchange(s.port, head, Duration::from_secs(30)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(raw_json_body(&answer)["ErrorCode"], "RequestTimeout");
    assert!(closed, "the stalled connection stayed open");
    // Four connections at once from one address; the fifth is refused.
    // Each is answered once (kept alive), so the server has surely counted
    // all four before the fifth arrives: connections are accepted on
    // several serving threads, in no set order.
    let mut held = Vec::new();
    for _ in 0..4 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", s.port)).await.unwrap();
        c.write_all(b"GET /2016-08-15/services HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(30), c.read_exact(&mut first))
            .await
            .expect("a held connection was not answered")
            .unwrap();
        assert_eq!(&first, b"HTTP/1.1 200", "a held connection was refused");
        held.push(c);
    }
    let (answer, _) = raw_exchange(
        s.port,
        b"GET /2016-08-15/services HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(30),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert_eq!(raw_json_body(&answer)["ErrorCode"], "ResourceThrottled");
    drop(held);
    // Once they are closed, connections are served again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (answer, _) = raw_exchange(
            s.port,
            b"GET /2016-08-15/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(30),
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still refused: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn handed_out_urls_ignore_the_host_header() {
    let s = Server::start(ServerOptions::default().arg("--public-url=https://fc.example.com")).await;
    s.create_service("url").await;
    s.create_function("url", "hello", guests::HELLO, json!({})).await;
    let r = s
        .call(
            Method::GET,
            "/2016-08-15/services/url/functions/hello/code",
            Vec::new(),
            &[("host", "evil.example")],
        )
        .await;
    let url = r.json()["url"].as_str().unwrap_or_default().to_string();
    assert!(url.starts_with("https://fc.example.com/wasmfc/code/"), "{url}");
    // The durable management URLs too.
    s.create_function("url", "hello-sequence", guests::HELLO_SEQUENCE, json!({}))
        .await;
    let r = s
        .call(
            Method::POST,
            "/runtime/webhooks/durabletask/orchestrators/hello-sequence",
            Vec::new(),
            &[("host", "evil.example")],
        )
        .await;
    let status_uri = r.json()["statusQueryGetUri"].as_str().unwrap_or_default().to_string();
    assert!(status_uri.starts_with("https://fc.example.com/"), "{status_uri}");
}

#[tokio::test]
async fn metrics_are_signed_or_served_apart() {
    let s = Server::start(ServerOptions::default().with_credentials("ak", "sk")).await;
    let unsigned = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.get("/metrics").await.status, StatusCode::OK, "signed");
    let s = Server::start(
        ServerOptions::default()
            .with_credentials("ak", "sk")
            .arg("--metrics-listen=127.0.0.1:0"),
    )
    .await;
    let apart = s.metrics_base.clone().expect("a metrics address");
    let r = s.http.get(format!("{apart}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("wasmfc_"), "metrics text");
    s.get("/metrics").await.assert_error(404, "PathNotSupported");
}

#[tokio::test]
async fn every_error_answer_has_an_fc_body() {
    let s = Server::default().await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!("GET / HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    for (request, status) in [
        ("GARBAGE\r\n\r\n".to_string(), 400),
        ("GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_string(), 400),
        (long_uri, 414),
        (many_headers, 431),
        (
            "GET /wasmfc/code/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
            400,
        ),
    ] {
        let (answer, _) = raw_exchange(s.port, request.as_bytes(), Duration::from_secs(30)).await;
        let head = answer.split("\r\n").next().unwrap_or_default().to_string();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{head} for {}",
            &request[..40.min(request.len())]
        );
        assert!(answer.to_ascii_lowercase().contains("x-fc-request-id:"), "{answer}");
        let body = raw_json_body(&answer);
        assert!(
            body["ErrorCode"].is_string() && body["ErrorMessage"].is_string(),
            "{body}"
        );
    }
}

/// A zip of a module whose custom section is `len` zero bytes: tiny zipped.
fn zip_bomb(len: usize) -> Vec<u8> {
    let mut module = wasm(guests::ECHO_WASI);
    let mut section = leb128(4);
    section.extend_from_slice(b"bomb");
    section.resize(section.len() + len, 0);
    module.push(0);
    module.extend(leb128(section.len() as u64));
    module.extend(section);
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file("bomb.wasm", deflated).unwrap();
        z.write_all(&module).unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

#[tokio::test]
async fn a_package_counts_at_its_unzipped_size() {
    let s = Server::start(ServerOptions::default().arg("--max-code-size-mb=8")).await;
    s.create_service("zip").await;
    let bomb = zip_bomb(200 << 20);
    assert!(bomb.len() < 1 << 20, "the bomb zips to {} bytes", bomb.len());
    let body = json!({
        "functionName": "bomb", "runtime": "wasm", "handler": "bomb.wasm",
        "code": { "zipFile": b64(&bomb) },
    });
    s.post_json("/2016-08-15/services/zip/functions", body)
        .await
        .assert_error(413, "EntityTooLarge");
    s.get("/2016-08-15/services/zip/functions/bomb")
        .await
        .assert_error(404, "FunctionNotFound");
}

#[tokio::test]
async fn task_logs_are_kept_within_a_total_budget() {
    let s = Server::start(ServerOptions::default().arg("--task-log-budget-mb=1")).await;
    s.create_service("logs").await;
    s.create_function("logs", "echo", guests::ECHO_WASI, json!({})).await;
    s.task_mode("logs", "echo", json!({ "maxAsyncRetryAttempts": 0 })).await;
    for i in 0..6 {
        let id = format!("log-{i}");
        let r = s.invoke_async("logs", "echo", "log:300000", Some(&id)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        s.wait_status("logs", "echo", &id, "Succeeded", Duration::from_secs(60))
            .await;
    }
    let logs = |id: &'static str| {
        let s = &s;
        async move {
            s.get(&format!(
                "/2016-08-15/services/logs/functions/echo/stateful-async-invocations/{id}/logs"
            ))
            .await
            .text()
        }
    };
    let oldest = logs("log-0").await;
    assert!(
        oldest.contains("dropped to keep the stored task logs"),
        "{}",
        &oldest[..oldest.len().min(200)]
    );
    let newest = logs("log-5").await;
    assert!(
        newest.len() >= 300_000,
        "the newest log was dropped: {} bytes",
        newest.len()
    );
}

#[tokio::test]
async fn a_wildcard_outbound_entry_reaches_public_hosts_only() {
    // An upstream on loopback: what a guest must not reach through "*".
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut conn, _)) = upstream.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream")
                    .await;
            });
        }
    });
    let s = Server::default().await;
    s.create_service("out").await;
    let target = format!("http://127.0.0.1:{port}/secret");
    let fetch = |function: &'static str| {
        let url = format!(
            "/2016-08-15/proxy/out/{function}/?url={}",
            percent_encoding::utf8_percent_encode(&target, percent_encoding::NON_ALPHANUMERIC)
        );
        let s = &s;
        async move { s.get(&url).await }
    };
    let deploy = |function: &'static str, hosts: Value| {
        let s = &s;
        async move {
            s.create_function(
                "out",
                function,
                guests::HTTP_FETCH,
                json!({ "allowedOutboundHosts": hosts }),
            )
            .await;
            let r = s
                .post_json(
                    &format!("/2016-08-15/services/out/functions/{function}/triggers"),
                    json!({"triggerName": "t", "triggerType": "http",
                           "triggerConfig": {"authType": "anonymous", "methods": ["GET"]}}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        }
    };
    deploy("star", json!(["*"])).await;
    let r = fetch("star").await;
    assert_eq!(r.status.as_u16(), 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    deploy("named", json!([format!("http://127.0.0.1:{port}")])).await;
    let r = fetch("named").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "upstream"));
    // A bare host name is an explicit entry too, but only for that name.
    deploy("plain", json!(["localhost"])).await;
    let r = fetch("plain").await;
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    // An entry that is not of Spin's form is refused when it is written.
    let r = s
        .put_json(
            "/2016-08-15/services/out/functions/star",
            json!({ "allowedOutboundHosts": ["ftp://x.com"] }),
        )
        .await;
    r.assert_error(400, "InvalidArgument");
}

#[tokio::test]
async fn a_cpu_bound_guest_leaves_the_serving_thread() {
    let s = Server::default().await;
    s.create_service("cpu").await;
    s.create_function("cpu", "spin", guests::SPIN, json!({ "timeout": 60 }))
        .await;
    s.create_function("cpu", "hello", guests::HELLO, json!({})).await;
    assert_eq!(s.invoke("cpu", "hello", "quick", &[]).await.text(), "Hello quick!");
    assert_eq!(
        s.metric("wasmfc_guest_offloads_total", &[]).await,
        0.0,
        "a short guest stays"
    );
    // Tens of milliseconds of CPU: many epoch ticks.
    let r = s.invoke("cpu", "spin", "50000000", &[]).await;
    assert!(r.text().starts_with("spun 50000000"), "{}", r.text());
    assert_eq!(s.metric("wasmfc_guest_offloads_total", &[]).await, 1.0);
    // With --no-guest-offload it stays where it started.
    let s = Server::start(ServerOptions::default().arg("--no-guest-offload")).await;
    s.create_service("cpu").await;
    s.create_function("cpu", "spin", guests::SPIN, json!({ "timeout": 60 }))
        .await;
    assert!(
        s.invoke("cpu", "spin", "50000000", &[])
            .await
            .text()
            .starts_with("spun")
    );
    assert_eq!(s.metric("wasmfc_guest_offloads_total", &[]).await, 0.0);
}

#[tokio::test]
async fn a_stalled_upload_ends_with_its_invocation() {
    let s = Server::default().await;
    s.create_service("slow").await;
    s.create_function("slow", "echo", guests::HTTP_ECHO, json!({ "timeout": 1 }))
        .await;
    let r = s
        .post_json(
            "/2016-08-15/services/slow/functions/echo/triggers",
            json!({"triggerName": "t", "triggerType": "http",
                   "triggerConfig": {"authType": "anonymous", "methods": ["POST"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // One byte of a thousand, then nothing: the guest waits for the rest
    // until its one-second deadline, and then the connection must end too
    // (the body timeouts are 30 s and 300 s by default).
    let head = b"POST /2016-08-15/proxy/slow/echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx";
    let (_, closed) = raw_exchange(s.port, head, Duration::from_secs(20)).await;
    assert!(closed, "the connection outlived its invocation");
}
