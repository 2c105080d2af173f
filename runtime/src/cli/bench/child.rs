//! Servers the benchmarks measure, each a child process of `wasmfc bench`:
//! a wasmfc server on a fresh data dir, and a plain axum hello-world as the
//! baseline. Separate processes keep the generator's own work out of the
//! server's profile and let each be killed cleanly.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::{ClientArgs, FcClient};

/// A running child server; killed when dropped.
pub struct ChildServer {
    process: tokio::process::Child,
    pub addr: SocketAddr,
    /// The wasmfc server's data dir, removed when dropped.
    _data_dir: Option<tempfile::TempDir>,
}

impl ChildServer {
    /// A wasmfc server on a fresh data dir, with `extra` `serve` flags.
    pub async fn wasmfc(extra: &[String]) -> anyhow::Result<ChildServer> {
        let data_dir = tempfile::Builder::new().prefix("wasmfc-bench-").tempdir()?;
        let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--data-dir"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(data_dir.path().display().to_string());
        args.extend(extra.iter().cloned());
        let (process, addr) = spawn(&args, "wasmfc listening on http://").await?;
        Ok(ChildServer {
            process,
            addr,
            _data_dir: Some(data_dir),
        })
    }

    /// The plain axum hello-world (`wasmfc bench baseline-server`).
    pub async fn baseline() -> anyhow::Result<ChildServer> {
        let args = ["bench", "baseline-server", "--listen", "127.0.0.1:0"].map(String::from);
        let (process, addr) = spawn(&args, "baseline listening on http://").await?;
        Ok(ChildServer {
            process,
            addr,
            _data_dir: None,
        })
    }

    /// A server process started elsewhere (e.g. `wasmtime serve`),
    /// listening on `addr`.
    pub fn external(process: tokio::process::Child, addr: SocketAddr) -> ChildServer {
        ChildServer {
            process,
            addr,
            _data_dir: None,
        }
    }

    /// A client for the FC API of this server (no credentials: it listens
    /// on loopback only).
    pub fn client(&self) -> FcClient {
        FcClient::new(&ClientArgs {
            endpoint: Some(format!("http://{}", self.addr)),
            ..Default::default()
        })
    }

    /// Kills the child at once (SIGKILL), as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.process.start_kill();
    }

    /// Resident set size of the child, in bytes (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.process.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// CPU time the child has used so far (user + system), from
    /// `/proc/<pid>/stat` (Linux). Read around a load run, it says what the
    /// server spent per request, independent of how much of the machine
    /// the generator took.
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.process.id()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        // In USER_HZ ticks, which Linux fixes at 100 per second for /proc.
        Some(Duration::from_millis((utime + stime) * 10))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}

async fn spawn(args: &[String], banner: &str) -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let exe = std::env::current_exe().context("locating the wasmfc executable")?;
    let mut process = tokio::process::Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting a child server")?;
    let stdout = process.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(banner) {
                return rest.trim().parse::<SocketAddr>().map_err(anyhow::Error::from);
            }
        }
        bail!("the child server exited before it listened")
    })
    .await
    .context("the child server did not start within 30 s")??;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((process, addr))
}

/// Creates service `service` (if missing) and function `function` from the
/// wasm file at `wasm`, then applies `settings` (FC function JSON).
pub async fn deploy(
    client: &FcClient,
    service: &str,
    function: &str,
    wasm: &Path,
    settings: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let code = std::fs::read(wasm).with_context(|| {
        format!(
            "reading {} (build the example guests first: bash scripts/build-guests.sh)",
            wasm.display()
        )
    })?;
    let body = serde_json::json!({ "serviceName": service }).to_string();
    match client.send(Method::POST, "/2016-08-15/services", &[], body).await {
        Ok(_) => {}
        Err(crate::client::ClientError::Api { status, .. }) if status == http::StatusCode::CONFLICT => {}
        Err(e) => return Err(e.into()),
    }
    upload_code(client, service, function, code).await?;
    if let Some(settings) = settings {
        client
            .send(
                Method::PUT,
                &format!("/2016-08-15/services/{service}/functions/{function}"),
                &[],
                settings.to_string(),
            )
            .await?;
    }
    Ok(())
}

/// Creates or replaces `function`'s code with raw wasm (the
/// `application/wasm` upload).
pub async fn upload_code(client: &FcClient, service: &str, function: &str, wasm: Vec<u8>) -> anyhow::Result<()> {
    client
        .send(
            Method::PUT,
            &format!("/2016-08-15/services/{service}/functions/{function}/code"),
            &[("content-type", "application/wasm")],
            Bytes::from(wasm),
        )
        .await?;
    Ok(())
}

/// `wasmfc bench baseline-server`: axum's hello world, nothing else.
pub async fn run_baseline(listen: SocketAddr) -> anyhow::Result<()> {
    async fn hello() -> &'static str {
        "Hello, World!"
    }
    let app = axum::Router::new().fallback(hello);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("baseline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
