//! `wasmfc bench wasi-http`: the same `wasi:http` hello component served by
//! wasmfc (through an HTTP trigger) and by `wasmtime serve` (wasmtime-cli
//! 48.0.8, the engine version wasmfc embeds) twice — at its defaults and at
//! its best flags ([`BEST_FLAGS`]) — under the same load generator in one
//! run. Each server is measured twice, alternating, so drift on a noisy
//! machine hits all; the ratio is requests per second against the faster
//! `wasmtime serve`.
//!
//! `wasmtime` is taken from `--wasmtime`, else `target/wasmtime-cli/bin`,
//! else installed there with `cargo install wasmtime-cli --version 48.0.8
//! --locked` (a few minutes, once).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use http::Method;

use super::CommonArgs;
use super::child::{ChildServer, deploy};
use super::load::{self, LoadResult};
use super::report::{Report, Row};

/// The wasmtime-cli release compared against (wasmfc embeds wasmtime 48).
const WASMTIME_CLI_VERSION: &str = "48.0.8";

#[derive(Debug, Clone, clap::Args)]
pub struct WasiHttpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The `wasmtime` binary to compare against (installed under
    /// target/wasmtime-cli when absent).
    #[arg(long)]
    pub wasmtime: Option<PathBuf>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds per measurement (each server is measured twice).
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
}

/// Finds `wasmtime`, installing wasmtime-cli with cargo when it is missing.
fn wasmtime_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let root = PathBuf::from("target/wasmtime-cli");
    let bin = root.join("bin").join("wasmtime");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!(
        "installing wasmtime-cli {WASMTIME_CLI_VERSION} into {} (once; takes minutes)",
        root.display()
    );
    let status = std::process::Command::new("cargo")
        .args([
            "install",
            "wasmtime-cli",
            "--version",
            WASMTIME_CLI_VERSION,
            "--locked",
            "--root",
        ])
        .arg(&root)
        .status()
        .context("running cargo install wasmtime-cli")?;
    if !status.success() || !bin.exists() {
        bail!("cargo install wasmtime-cli {WASMTIME_CLI_VERSION} failed");
    }
    Ok(bin)
}

/// `wasmtime serve`'s fastest settings for a small component: an instance
/// reused for up to 128 requests, and the pooling allocator keeping
/// memories and tables resident between instances and resetting them with
/// `pagemap_scan`.
pub const BEST_FLAGS: &[&str] = &[
    "--max-instance-reuse-count=128",
    "-Opooling-allocator=y",
    "-Opooling-memory-keep-resident=1048576",
    "-Opooling-table-keep-resident=65536",
    "-Opooling-pagemap-scan=y",
];

/// `wasmtime serve` on a free loopback port with `flags`; killed when
/// dropped.
async fn wasmtime_serve(wasmtime: &Path, component: &Path, flags: &[&str]) -> anyhow::Result<ChildServer> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let process = tokio::process::Command::new(wasmtime)
        .arg("serve")
        .arg("--addr")
        .arg(addr.to_string())
        // Rust's std imports wasi:cli beyond the proxy world.
        .arg("-Scli")
        .args(flags)
        .arg(component)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} serve", wasmtime.display()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            bail!("wasmtime serve did not listen on {addr} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(ChildServer::external(process, addr))
}

pub async fn run(args: WasiHttpArgs) -> anyhow::Result<()> {
    let component = args.common.guest("http-hello");
    if !component.exists() {
        bail!(
            "{} is missing: build the example guests first (bash scripts/build-guests.sh)",
            component.display()
        );
    }
    let wasmtime = wasmtime_binary(args.wasmtime.as_deref())?;

    let server = ChildServer::wasmfc(&[]).await?;
    let client = server.client();
    deploy(&client, "bench", "hello", &component, None).await?;
    let trigger = serde_json::json!({
        "triggerName": "web", "triggerType": "http",
        "triggerConfig": {"authType": "anonymous", "methods": ["GET", "POST"]},
    });
    client
        .send(
            Method::POST,
            "/2016-08-15/services/bench/functions/hello/triggers",
            &[],
            trigger.to_string(),
        )
        .await?;
    let defaults = wasmtime_serve(&wasmtime, &component, &[]).await?;
    let best = wasmtime_serve(&wasmtime, &component, BEST_FLAGS).await?;

    let targets = [
        ("wasmtime serve (defaults)", defaults.addr, "/hello".to_string()),
        ("wasmtime serve (best flags)", best.addr, "/hello".to_string()),
        (
            "wasmfc HTTP trigger",
            server.addr,
            "/2016-08-15/proxy/bench/hello/hello".to_string(),
        ),
    ];
    let results = load::alternating(
        &targets,
        args.connections,
        2,
        Duration::from_secs(args.duration),
        Some(Duration::from_secs(1)),
    )
    .await?;
    let mut report = Report::new("wasi-http");
    // Against the faster of the two `wasmtime serve`s.
    let base = results
        .iter()
        .take(2)
        .map(LoadResult::per_second)
        .fold(f64::MIN_POSITIVE, f64::max);
    for (i, ((name, _, _), result)) in targets.iter().zip(&results).enumerate() {
        let rps = result.per_second();
        let flags = if i == 1 {
            format!("; {}", BEST_FLAGS.join(" "))
        } else {
            String::new()
        };
        report.rows.push(
            Row::from_histogram(*name, &result.latency_us, 1000.0)
                .per_second(rps)
                .ratio(rps / base)
                .note(format!(
                    "{} connections, 2 × {} s alternating; ratio vs the faster wasmtime serve{flags}",
                    args.connections, args.duration
                )),
        );
    }
    report.print(args.common.json);
    Ok(())
}
