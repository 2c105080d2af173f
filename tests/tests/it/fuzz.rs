//! Fuzz and chaos: generated and mutated modules, malformed JSON for every
//! write endpoint, malformed requests over raw sockets, and kill -9 during a
//! submission storm. Each asserts what must always hold: no 5xx, no crash,
//! nothing half-stored, an FC error body on every 4xx, no acknowledged task
//! lost and none succeeded twice.
//!
//! Seeded and bounded: `WASMFC_FUZZ_SEED` picks the seed (printed by every
//! test, so a failure can be replayed), and by default each test runs a
//! fixed number of cases in well under a minute. `WASMFC_FUZZ_SECS=N`
//! makes each fuzz test run for N seconds instead, `WASMFC_CHAOS_ROUNDS=N`
//! sets the kill -9 rounds; about an hour in all:
//!
//! ```sh
//! WASMFC_FUZZ_SECS=1200 WASMFC_CHAOS_ROUNDS=60 cargo test -p wasmfc-tests --test it fuzz:: -- --nocapture --test-threads 1
//! ```

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmfc_tests::{Reply, Server, ServerOptions, b64, guests, raw_exchange, wasm};

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("WASMFC_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5EED_F00D_u64);
        println!("{test}: WASMFC_FUZZ_SEED={seed}");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Runs `case` `cases` times, or for `WASMFC_FUZZ_SECS` when set.
async fn for_cases<F, Fut>(cases: usize, mut case: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let until = std::env::var("WASMFC_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let mut i = 0;
    loop {
        let more = match until {
            Some(until) => Instant::now() < until,
            None => i < cases,
        };
        if !more {
            break;
        }
        case(i).await;
        i += 1;
    }
}

/// No 5xx; a 4xx carries FC's error body and a request id.
fn assert_clean(r: &Reply, what: &str) {
    assert!(
        !r.status.is_server_error(),
        "{what}: {} {}",
        r.status,
        r.text().chars().take(300).collect::<String>()
    );
    if r.status.is_client_error() {
        let body: Value =
            serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", r.text()));
        assert!(
            body["ErrorCode"].is_string() && body["ErrorMessage"].is_string(),
            "{what}: {body}"
        );
        assert!(r.header("x-fc-request-id").is_some(), "{what}: no request id");
    }
}

/// A module that wasm-smith generated from `seed_bytes`, exporting `_start`
/// (so a WASI command), or any module when `as_command` is false.
fn generated_module(seed_bytes: &[u8], as_command: bool) -> Option<Vec<u8>> {
    // The proposals wasmfc's engine leaves off are off here too, so that
    // most generated modules get past validation and run.
    let mut config = wasm_smith::Config {
        max_memory32_bytes: 256 << 20,
        max_imports: 0,
        gc_enabled: false,
        exceptions_enabled: false,
        threads_enabled: false,
        memory64_enabled: false,
        wide_arithmetic_enabled: false,
        compact_imports_enabled: false,
        reference_types_enabled: false,
        tail_call_enabled: false,
        ..wasm_smith::Config::default()
    };
    if as_command {
        config.exports = Some(wat::parse_str(r#"(module (func (export "_start")))"#).ok()?);
    }
    let mut u = arbitrary::Unstructured::new(seed_bytes);
    wasm_smith::Module::new(config, &mut u).ok().map(|m| m.to_bytes())
}

/// `wasm` with a few random edits: flipped bytes, a cut, a copied slice.
fn mutated(rng: &mut Rng, wasm: &[u8]) -> Vec<u8> {
    let mut out = wasm.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 => {
                let at = rng.below(out.len());
                out[at] ^= 1 << rng.below(8);
            }
            1 => {
                let at = rng.below(out.len());
                out[at] = rng.next() as u8;
            }
            2 => out.truncate(8 + rng.below(out.len().saturating_sub(8)).max(1)),
            _ => {
                let from = rng.below(out.len());
                let len = rng.below(64).min(out.len() - from);
                let slice = out[from..from + len].to_vec();
                let at = rng.below(out.len());
                out.splice(at..at, slice);
            }
        }
    }
    out
}

#[tokio::test]
async fn generated_and_mutated_modules_never_break_the_server() {
    let mut rng = Rng::from_env("modules");
    let s = Server::default().await;
    s.create_service("fz").await;
    let originals = [wasm(guests::ECHO_WASI), wasm(guests::HELLO)];
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    for_cases(150, |i| {
        let module = match i % 3 {
            0 => generated_module(&rng.bytes(4096), true),
            1 => generated_module(&rng.bytes(2048), false),
            _ => Some(mutated(&mut rng, &originals[i / 3 % 2])),
        };
        let (s, accepted) = (&s, &accepted);
        async move {
            let Some(module) = module else { return };
            let name = format!("m{i}");
            let body = json!({
                "functionName": name, "runtime": "wasm", "handler": "index.handler", "timeout": 2,
                "memorySize": 64, "code": { "zipFile": b64(&module) },
            });
            let created = s.post_json("/2016-08-15/services/fz/functions", body).await;
            assert_clean(&created, &format!("upload {name}"));
            let path = format!("/2016-08-15/services/fz/functions/{name}");
            if created.status != StatusCode::OK {
                // Refused: nothing of it was stored.
                s.get(&path).await.assert_error(404, "FunctionNotFound");
                return;
            }
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = s.invoke("fz", &name, "event", &[]).await;
            assert_clean(&r, &format!("invoke {name}"));
            assert_eq!(s.delete(&path).await.status, StatusCode::NO_CONTENT);
        }
    })
    .await;
    println!("modules: {} accepted and invoked", accepted.into_inner());
    // Still serving.
    s.create_function("fz", "hello", guests::HELLO, json!({})).await;
    assert_eq!(s.invoke("fz", "hello", "after", &[]).await.text(), "Hello after!");
}

/// Bodies that are not the JSON an endpoint wants.
fn bad_body(rng: &mut Rng) -> Vec<u8> {
    let valid = r#"{"serviceName":"x","functionName":"y","runtime":"wasm","code":{"zipFile":"AGFzbQEAAAA="}}"#;
    match rng.below(10) {
        0 => {
            let n = rng.below(200);
            rng.bytes(n)
        }
        1 => valid.as_bytes()[..rng.below(valid.len())].to_vec(),
        2 => "[".repeat(10_000).into_bytes(),
        3 => b"null".to_vec(),
        4 => b"[]".to_vec(),
        5 => format!(r#"{{"description": "{}"}}"#, "d".repeat(100_000)).into_bytes(),
        6 => rng
            .pick(&[
                r#"{"timeout": "ten"}"#,
                r#"{"memorySize": -1}"#,
                r#"{"timeout": 1e400}"#,
                r#"{"environmentVariables": [1, 2]}"#,
                r#"{"serviceName": 5}"#,
                r#"{"versionId": {}}"#,
                r#"{"triggerConfig": "{not json"}"#,
                r#"{"target": -5}"#,
                r#"{"maxAsyncRetryAttempts": 99}"#,
                r#"{"additionalVersionWeight": {"1": 7}}"#,
                r#"{"scheduledActions": [{"scheduleExpression": "cron(* *)", "target": 1}]}"#,
            ])
            .as_bytes()
            .to_vec(),
        7 => "\u{feff}{\"a\":1}".as_bytes().to_vec(),
        8 => b"{\"a\":\"\\ud800\"}".to_vec(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn malformed_json_to_every_write_endpoint_is_a_clean_4xx() {
    let mut rng = Rng::from_env("json");
    let s = Server::default().await;
    s.create_service("js").await;
    s.create_function("js", "f", guests::HELLO, json!({})).await;
    s.create_function("js", "web", guests::HTTP_HELLO, json!({})).await;
    let r = s
        .post_json(
            "/2016-08-15/services/js/functions/web/triggers",
            json!({"triggerName": "t", "triggerType": "http", "triggerConfig": {"authType": "anonymous", "methods": ["GET"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        s.post_json("/2016-08-15/services/js/versions", json!({})).await.status,
        StatusCode::OK
    );
    let r = s
        .post_json(
            "/2016-08-15/services/js/aliases",
            json!({"aliasName": "prod", "versionId": "1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let endpoints: &[(Method, &str)] = &[
        (Method::POST, "/2016-08-15/services"),
        (Method::PUT, "/2016-08-15/services/js"),
        (Method::POST, "/2016-08-15/services/js/functions"),
        (Method::PUT, "/2016-08-15/services/js/functions/f"),
        (
            Method::PUT,
            "/2016-08-15/services/js.LATEST/functions/f/async-invoke-config",
        ),
        (Method::PUT, "/2016-08-15/services/js.prod/functions/f/provision-config"),
        (Method::POST, "/2016-08-15/services/js/functions/web/triggers"),
        (Method::PUT, "/2016-08-15/services/js/functions/web/triggers/t"),
        (Method::POST, "/2016-08-15/services/js/versions"),
        (Method::POST, "/2016-08-15/services/js/aliases"),
        (Method::PUT, "/2016-08-15/services/js/aliases/prod"),
        (Method::PUT, "/2021-04-06/services/js/functions/f"),
    ];
    let before = s.get("/2016-08-15/services/js/functions/f").await.json();
    for_cases(240, |i| {
        let (method, path) = endpoints[i % endpoints.len()].clone();
        let body = bad_body(&mut rng);
        let s = &s;
        async move {
            let r = s
                .call(
                    method.clone(),
                    path,
                    body.clone(),
                    &[("content-type", "application/json")],
                )
                .await;
            assert_clean(
                &r,
                &format!(
                    "{method} {path} with {:?}",
                    String::from_utf8_lossy(&body[..body.len().min(80)])
                ),
            );
        }
    })
    .await;
    // Failed updates changed nothing (an accepted one may have, e.g. `{}`).
    let after = s.get("/2016-08-15/services/js/functions/f").await.json();
    for field in ["codeChecksum", "runtime", "handler"] {
        assert_eq!(before[field], after[field], "{field}");
    }
    assert_eq!(s.invoke("js", "f", "still", &[]).await.text(), "Hello still!");
}

/// Requests that are not valid HTTP, or not what the API expects.
fn bad_request(rng: &mut Rng) -> Vec<u8> {
    let paths = [
        "/2016-08-15/services/%00/functions/x/invocations",
        "/2016-08-15/services/../../etc/passwd",
        "/2016-08-15/services/s\u{e9}rvice",
        "/2016-08-15/proxy/a/b/%ff",
        "/wasmfc/code/..%2f..%2fwasmfc.db",
        "/2021-04-06/services?limit=-5&nextToken=%ff",
        "/2016-08-15/services/x/functions/y/stateful-async-invocations/%20bad",
        "/runtime/webhooks/durabletask/instances/%ff?showHistory=maybe",
        "/metrics?x=\u{1}",
        "//",
        "*",
    ];
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW", "G\u{c9}T", "",
    ];
    let path = *rng.pick(&paths);
    let method = *rng.pick(&methods);
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
    match rng.below(8) {
        0 => request.extend_from_slice(b"Content-Length: -1\r\n"),
        1 => request.extend_from_slice(b"Content-Length: 5\r\nContent-Length: 7\r\n"),
        2 => request.extend_from_slice(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
        3 => request.extend_from_slice(b"X-Fc-Invocation-Type: \xff\xfe\r\n"),
        4 => request.extend_from_slice(b"Authorization: FC a:\x01\x02\r\n"),
        5 => {
            request.extend_from_slice(b"X-Junk: ");
            request.extend(rng.bytes(40).into_iter().filter(|b| *b != b'\r' && *b != b'\n'));
            request.extend_from_slice(b"\r\n");
        }
        6 => request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n"),
        _ => request.extend_from_slice(b"Content-Length: 1000000000\r\n"),
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request
}

#[tokio::test]
async fn malformed_requests_over_raw_sockets_never_break_the_server() {
    let mut rng = Rng::from_env("raw");
    let s = Server::start(
        ServerOptions::default()
            .arg("--header-read-timeout-secs=2")
            .arg("--body-idle-timeout-secs=1"),
    )
    .await;
    for_cases(120, |_| {
        let request = bad_request(&mut rng);
        let port = s.port;
        async move {
            let (answer, _) = raw_exchange(port, &request, Duration::from_secs(15)).await;
            let what = String::from_utf8_lossy(&request[..request.len().min(120)]).into_owned();
            let Some(status) = answer.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) else {
                return; // closed without an answer (a head that could not end)
            };
            assert!(status < 500, "{what}: {answer}");
            let durable = what.contains("/runtime/webhooks/");
            let guest = what.contains("/proxy/");
            if status >= 400 && !durable && !guest {
                assert!(
                    answer.to_ascii_lowercase().contains("x-fc-request-id:"),
                    "{what}: {answer}"
                );
                let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {answer}"));
                assert!(body["ErrorCode"].is_string(), "{what}: {answer}");
            }
        }
    })
    .await;
    assert_eq!(s.get("/2016-08-15/services").await.status, StatusCode::OK);
}

#[tokio::test]
async fn kill_9_during_a_submission_storm_loses_no_acknowledged_task() {
    let rounds: usize = std::env::var("WASMFC_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut rng = Rng::from_env("storm");
    let mut s = Server::default().await;
    s.create_service("storm").await;
    s.create_function("storm", "sleep", guests::SLEEP, json!({ "timeout": 30 }))
        .await;
    s.task_mode("storm", "sleep", json!({ "maxAsyncRetryAttempts": 8 }))
        .await;
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..rounds {
        let kill_after = 80 + rng.below(120);
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        // Eight submitters, each sending until the server goes away.
        let submitters: Vec<_> = (0..8)
            .map(|lane| {
                let acked = acked.clone();
                let http = s.http.clone();
                let url = s.url("/2016-08-15/services/storm/functions/sleep/invocations");
                let ms = 5 + rng.below(40);
                tokio::spawn(async move {
                    for n in 0.. {
                        let id = format!("r{round}l{lane}n{n}");
                        let sent = http
                            .post(&url)
                            .header("x-fc-invocation-type", "Async")
                            .header("x-fc-stateful-async-invocation-id", &id)
                            .body(ms.to_string())
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == StatusCode::ACCEPTED => acked.lock().unwrap().push(id),
                            Ok(r) => panic!("{id}: {}", r.status()),
                            Err(_) => return, // the server is gone
                        }
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < kill_after {
            assert!(Instant::now() < deadline, "round {round}: submissions stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.kill9();
        for submitter in submitters {
            submitter.await.expect("a submitter panicked");
        }
        acknowledged.extend(acked.lock().unwrap().drain(..));
        s.start_again().await;
    }
    // Every acknowledged task ends Succeeded, with one success in its history.
    let deadline = Instant::now() + Duration::from_secs(180);
    for id in &acknowledged {
        let t = s
            .wait_task(
                "storm",
                "sleep",
                id,
                deadline.saturating_duration_since(Instant::now()),
                |t| {
                    ["Succeeded", "Failed", "Stopped", "Expired", "Invalid"]
                        .contains(&t["status"].as_str().unwrap_or(""))
                },
            )
            .await;
        assert_eq!(t["status"], "Succeeded", "{id}: {t}");
        let successes = t["events"]
            .as_array()
            .map_or(0, |e| e.iter().filter(|e| e["status"] == "Succeeded").count());
        assert_eq!(successes, 1, "{id}: {t}");
    }
    println!(
        "storm: {} acknowledged tasks over {rounds} kill -9 rounds, all Succeeded once",
        acknowledged.len()
    );
}
