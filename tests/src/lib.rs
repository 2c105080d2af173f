//! Test harness: start the real `wasmfc` binary on an ephemeral port, talk
//! to it over HTTP, and run the official Python SDKs against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub mod browser;
pub mod postgres;

/// Paths of the example guests, built by `build.rs`.
/// The Python and JavaScript example guests (`guest-examples/hello-py`,
/// `hello-js`): built by `scripts/build-script-guests.sh`, which
/// `scripts/test.sh` runs before the tests (componentize-py and
/// componentize-js are not cargo builds).
pub mod script_guests {
    fn built(name: &str) -> String {
        let p = super::repo_root().join("target/guest-examples/script").join(name);
        assert!(
            p.exists(),
            "{} is missing: run scripts/build-script-guests.sh (scripts/test.sh does)",
            p.display()
        );
        p.display().to_string()
    }

    pub fn hello_py() -> String {
        built("hello_py.wasm")
    }

    pub fn hello_js() -> String {
        built("hello_js.wasm")
    }

    /// The HTTP function in Python (a `wasi:http/proxy` component).
    pub fn http_hello_py() -> String {
        built("http_hello_py.wasm")
    }
}

pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `wasmfc` binary: `$WASMFC_BIN`, else the one cargo built next to
/// this test executable (`target/<profile>/wasmfc`).
pub fn wasmfc_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WASMFC_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/it-<hash> → target/<profile>/wasmfc
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("wasmfc")).unwrap();
    assert!(
        bin.exists(),
        "{} does not exist: build the server first (`cargo build -p wasmfc`), as scripts/test.sh does",
        bin.display()
    );
    bin
}

/// Reads a guest's bytes.
pub fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A zip holding `files`.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        for (name, data) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// (access key id, secret) to require signatures with.
    pub credentials: Option<(String, String)>,
    /// Extra `wasmfc serve` arguments.
    pub args: Vec<String>,
    /// The address to listen on (default `127.0.0.1:0`).
    pub listen: Option<String>,
}

impl ServerOptions {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.into());
        self
    }

    pub fn with_credentials(mut self, ak: &str, sk: &str) -> Self {
        self.credentials = Some((ak.into(), sk.into()));
        self
    }
}

/// The store the servers of this test run use: `None` for the embedded
/// SQLite file in each server's data dir (the default), or, when
/// `WASMFC_TEST_STORE=postgres`, a fresh database for each server on one
/// throwaway PostgreSQL that this test process starts on first use (and
/// stops when it exits).
pub fn test_store_url() -> Option<String> {
    match std::env::var("WASMFC_TEST_STORE").as_deref() {
        Ok("postgres") => {}
        Ok("sqlite") | Err(_) => return None,
        Ok(other) => panic!("WASMFC_TEST_STORE={other}: expected sqlite or postgres"),
    }
    static NEXT_DB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let pg = postgres::shared();
    let n = NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(pg.create_database(&format!("server{n}")))
}

/// A running `wasmfc serve` process on a private data dir.
pub struct Server {
    pub base: String,
    pub port: u16,
    /// `http://host:port` of `--metrics-listen`, when given.
    pub metrics_base: Option<String>,
    child: Option<Child>,
    data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    options: ServerOptions,
    /// `--store`, when the servers of this run share a PostgreSQL.
    store: Option<String>,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(options: ServerOptions) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let mut s = Server {
            base: String::new(),
            port: 0,
            metrics_base: None,
            child: None,
            data,
            _tmp: Some(tmp),
            store: if options.args.iter().any(|a| a.starts_with("--store")) {
                None
            } else {
                test_store_url()
            },
            options,
            http: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
        };
        s.spawn(0).await;
        s
    }

    pub async fn default() -> Server {
        Server::start(ServerOptions::default()).await
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server's stderr so far (its tracing log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    async fn spawn(&mut self, port: u16) {
        std::fs::create_dir_all(self.data.parent().unwrap()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .unwrap();
        let mut cmd = Command::new(wasmfc_bin());
        let host = match &self.options.listen {
            Some(addr) => addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).to_string(),
            None => "127.0.0.1".to_string(),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("{host}:{port}"))
            .arg("--data-dir")
            .arg(&self.data)
            // Each slot reserves address space; tests need few.
            .arg("--max-instances")
            .arg("64");
        if let Some((ak, sk)) = &self.options.credentials {
            let path = self.data.with_extension("credentials.json");
            std::fs::write(&path, json!({ ak: sk }).to_string()).unwrap();
            cmd.arg("--credentials").arg(path);
        }
        if let Some(url) = &self.store {
            // Leases shorter than the default, so that a test which kills a
            // server sees its tasks come back within seconds.
            cmd.arg("--store").arg(url).arg("--lease-secs=5");
        }
        cmd.args(&self.options.args)
            .env("RUST_LOG", "info,wasmfc=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawning wasmfc");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let metrics = std::sync::Arc::new(std::sync::Mutex::new(None));
        let metrics_seen = metrics.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("wasmfc listening on ") {
                    let _ = tx.send(addr.to_string());
                } else if let Some(url) = line.strip_prefix("wasmfc metrics on ") {
                    *metrics_seen.lock().unwrap() = url.strip_suffix("/metrics").map(str::to_string);
                }
            }
        });
        let base = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("wasmfc did not start; log:\n{}", self.log()));
        // The metrics line, when there is one, comes before the listening line.
        self.metrics_base = metrics.lock().unwrap().clone();
        self.port = base.rsplit(':').next().unwrap().parse().unwrap();
        self.base = base;
        self.child = Some(child);
    }

    /// Kills the server with SIGKILL (a crash), leaving its data dir.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data dir and port.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(port).await;
    }

    /// Starts a killed server again on the same data dir and port.
    pub async fn start_again(&mut self) {
        let port = self.port;
        self.spawn(port).await;
    }

    /// Runs the `wasmfc` CLI (`args`, e.g. `["tasks", "list", ...]`) against
    /// this server, signed with its credentials when it has them; answers
    /// whether it exited 0, and its stdout followed by its stderr.
    pub async fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut cmd = tokio::process::Command::new(wasmfc_bin());
        cmd.args(args)
            .env("WASMFC_ENDPOINT", &self.base)
            .env("RUST_BACKTRACE", "0");
        if let Some((ak, sk)) = &self.options.credentials {
            cmd.env("WASMFC_ACCESS_KEY_ID", ak).env("WASMFC_ACCESS_KEY_SECRET", sk);
        }
        let out = cmd.output().await.expect("running the wasmfc CLI");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request (signed in the FC scheme when the server has
    /// credentials); returns status, headers and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method.clone(), self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((ak, sk)) = &self.options.credentials {
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            let content_type = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map_or("application/json", |(_, v)| *v);
            req = req.header("date", &date);
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                req = req.header("content-type", content_type);
            }
            let auth = sign_fc(ak, sk, method.as_str(), path, content_type, &date, headers);
            req = req.header("authorization", auth);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        Reply::from(resp).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Vec::new(), &[]).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.call(
            Method::POST,
            path,
            body.to_string(),
            &[("content-type", "application/json")],
        )
        .await
    }

    pub async fn put_json(&self, path: &str, body: Value) -> Reply {
        self.call(
            Method::PUT,
            path,
            body.to_string(),
            &[("content-type", "application/json")],
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, Vec::new(), &[]).await
    }

    pub async fn create_service(&self, name: &str) -> Reply {
        let r = self
            .post_json("/2016-08-15/services", json!({ "serviceName": name }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "create service {name}: {}", r.text());
        r
    }

    /// Creates a function from a guest file (sent base64, as the SDKs do),
    /// with extra settings merged into the body.
    pub async fn create_function(&self, service: &str, name: &str, guest: &str, extra: Value) -> Reply {
        let mut body = json!({
            "functionName": name,
            "runtime": "wasm",
            "handler": "index.handler",
            "code": { "zipFile": b64(&wasm(guest)) },
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .post_json(&format!("/2016-08-15/services/{service}/functions"), body)
            .await;
        assert_eq!(r.status, StatusCode::OK, "create function {name}: {}", r.text());
        r
    }

    /// A sync invocation with extra headers.
    pub async fn invoke(
        &self,
        service: &str,
        function: &str,
        event: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.call(
            Method::POST,
            &format!("/2016-08-15/services/{service}/functions/{function}/invocations"),
            event,
            headers,
        )
        .await
    }

    /// Submits an async invocation; returns the reply (202 expected).
    pub async fn invoke_async(
        &self,
        service: &str,
        function: &str,
        payload: impl Into<reqwest::Body>,
        id: Option<&str>,
    ) -> Reply {
        let mut headers = vec![("x-fc-invocation-type", "Async")];
        if let Some(id) = id {
            headers.push(("x-fc-stateful-async-invocation-id", id));
        }
        self.invoke(service, function, payload, &headers).await
    }

    /// Turns task mode on for `service/function` (LATEST) with `extra` settings.
    pub async fn task_mode(&self, service: &str, function: &str, extra: Value) {
        let mut body = json!({ "statefulInvocation": true });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .put_json(
                &format!("/2016-08-15/services/{service}.LATEST/functions/{function}/async-invoke-config"),
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "async config: {}", r.text());
    }

    /// GetStatefulAsyncInvocation (the JSON object; panics unless 200).
    pub async fn task(&self, service: &str, function: &str, id: &str) -> Value {
        let r = self
            .get(&format!(
                "/2016-08-15/services/{service}/functions/{function}/stateful-async-invocations/{id}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "get task {id}: {}", r.text());
        r.json()
    }

    /// Polls a task until `done(task)` holds; panics after `timeout`.
    pub async fn wait_task(
        &self,
        service: &str,
        function: &str,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let t = self.task(service, function, id).await;
            if done(&t) {
                return t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "task {id} did not get there in {timeout:?}: {t}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Polls until the task has `status`.
    pub async fn wait_status(&self, service: &str, function: &str, id: &str, status: &str, timeout: Duration) -> Value {
        self.wait_task(service, function, id, timeout, |t| t["status"] == status)
            .await
    }

    /// The value of one metric sample (first match of `name{...}` with all
    /// `labels`), or 0 when absent.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.get("/metrics").await.text();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Polls [`Server::metric`] until it reaches `at_least`; panics after
    /// `timeout` with the last value.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], at_least: f64, timeout: Duration) -> f64 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let value = self.metric(name, labels).await;
            if value >= at_least {
                return value;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}{labels:?} stayed at {value} (wanted {at_least}) for {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The FC signature scheme (spec §3.1), written independently of the
/// server's verifier so the two check each other.
pub fn sign_fc(
    ak: &str,
    sk: &str,
    method: &str,
    path: &str,
    content_type: &str,
    date: &str,
    headers: &[(&str, &str)],
) -> String {
    use hmac::Mac;
    let mut fc: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-fc-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    fc.sort();
    let canonical: String = fc.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let raw_path = path.split('?').next().unwrap();
    let resource = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let content_md5 = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-md5"))
        .map_or("", |(_, v)| *v);
    let sts = format!("{method}\n{content_md5}\n{content_type}\n{date}\n{canonical}{resource}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(sk.as_bytes()).unwrap();
    mac.update(sts.as_bytes());
    format!("FC {ak}:{}", b64(&mac.finalize().into_bytes()))
}

/// Base64 of the MD5 of `body`: a `Content-MD5` header's value.
pub fn content_md5(body: &[u8]) -> String {
    use md5::Digest as _;
    b64(&md5::Md5::digest(body))
}

/// Sends `request` (raw bytes) on a new connection to `port` and reads
/// until the server closes it or `within` passes; answers what was read
/// and whether the server closed the connection.
pub async fn raw_exchange(port: u16, request: &[u8], within: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connecting");
    stream.write_all(request).await.expect("sending");
    let mut got = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// The JSON body of a raw HTTP/1.1 answer (after the head).
pub fn raw_json_body(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {answer}"))
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        Reply { status, headers, body }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an FC error: status, `ErrorCode`, and a request id in both
    /// the header and the body.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status} {code}, got: {}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["ErrorCode"], code, "body: {body}");
        assert!(
            body["ErrorMessage"].as_str().is_some_and(|m| !m.is_empty()),
            "body: {body}"
        );
        let id = self.header("x-fc-request-id").expect("X-Fc-Request-Id header");
        assert_eq!(body["RequestId"], id, "body: {body}");
    }
}

/// The Python interpreter of the test venv (created by scripts/test.sh).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("WASMFC_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv").join("bin").join("python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh, which creates the venv with the official FC SDKs",
        p.display()
    );
    p
}

/// Runs a Python script from `tests/sdk/` against `server`; panics with its
/// output unless it exits 0.
pub async fn run_python(script: &str, server: &Server, env: &[(&str, &str)]) -> String {
    let path = repo_root().join("tests").join("sdk").join(script);
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&path)
        .env("WASMFC_ENDPOINT", &server.base)
        .env(
            "WASMFC_HOSTPORT",
            server.base.trim_start_matches("http://").trim_start_matches("https://"),
        )
        .env("PYTHONUNBUFFERED", "1");
    if let Some((ak, sk)) = &server.options.credentials {
        cmd.env("WASMFC_AK", ak).env("WASMFC_SK", sk);
    }
    for (name, path) in guests::ALL {
        cmd.env(format!("GUEST_{}", name.replace('-', "_").to_uppercase()), path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} timed out"))
        .expect("running python");
    let text = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script} failed:\n{text}\n--- server log ---\n{}",
        tail(&server.log(), 6000)
    );
    text
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let mut i = start;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}
