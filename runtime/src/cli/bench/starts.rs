//! `wasmfc bench starts`: what a start costs over HTTP, by kind, beside a
//! plain axum route measured in the same run.
//!
//! - `warm`: the function's idle instance is reused;
//! - `cold`: a new instance each call, its compiled code loaded again from
//!   the on-disk artifact (`X-Wasmfc-Start: cold`);
//! - `provisioned`: through an alias with a provisioned instance;
//! - `fresh upload`: new code uploaded (compiled) and invoked once;
//! - throughput of warm invocations over many connections vs the baseline;
//! - the memory 1,000 (`--provisioned`) provisioned instances add.
//!
//! Latency modes run one request at a time on one keep-alive connection, so
//! they measure the start, not queueing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use http::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::CommonArgs;
use super::child::{ChildServer, deploy, upload_code};
use super::load::{self, LoadResult, Until, new_histogram};
use super::report::{Report, Row};
use crate::client::FcClient;

#[derive(Debug, Clone, clap::Args)]
pub struct StartsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The example guest to deploy.
    #[arg(long, default_value = "hello")]
    pub guest: String,
    /// Requests per latency mode.
    #[arg(long, default_value_t = 1000)]
    pub iterations: u64,
    /// More guests measured beside `--guest` (warm, cold and provisioned
    /// starts), comma-separated; empty for none. The defaults are the
    /// Python and JavaScript examples: megabyte components.
    #[arg(long, default_value = "hello-py,hello-js", value_delimiter = ',')]
    pub also: Vec<String>,
    /// Requests per latency mode for the `--also` guests.
    #[arg(long, default_value_t = 200)]
    pub also_iterations: u64,
    /// Fresh uploads (each compiles new code).
    #[arg(long, default_value_t = 10)]
    pub uploads: u64,
    /// Provisioned instances for the memory measurement (0 to skip).
    #[arg(long, default_value_t = 1000)]
    pub provisioned: u64,
    /// Connections for the throughput comparison.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds per throughput measurement (each target is measured in 3
    /// alternating rounds).
    #[arg(long, default_value_t = 2)]
    pub duration: u64,
    /// Where to write the latency chart.
    #[arg(long, default_value = "wasmfc-bench-starts.svg")]
    pub svg: PathBuf,
    /// An extra flag for the wasmfc server under test (repeat for more),
    /// e.g. `--server-flag=--no-write-batching` to compare a setting.
    #[arg(long = "server-flag", allow_hyphen_values = true)]
    pub server_flags: Vec<String>,
}

const SERVICE: &str = "bench";
/// Alternating rounds of the throughput comparison.
const THROUGHPUT_ROUNDS: u32 = 3;

pub async fn run(args: StartsArgs) -> anyhow::Result<()> {
    let progress = ProgressBar::new(8 + args.also.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(100));
    let step = |msg: &str| {
        progress.inc(1);
        progress.set_message(msg.to_string());
    };

    step("starting servers");
    let baseline = ChildServer::baseline().await?;
    let max = (args.provisioned + 64).max(1000).to_string();
    let mut serve_args = vec!["--max-instances".to_string(), max];
    serve_args.extend(args.server_flags.iter().cloned());
    let server = ChildServer::wasmfc(&serve_args).await?;
    let client = server.client();
    let wasm_path = args.common.guest(&args.guest);
    deploy(&client, SERVICE, "f", &wasm_path, None).await?;
    let also: Vec<&String> = args.also.iter().filter(|g| !g.is_empty()).collect();
    for guest in &also {
        deploy(&client, SERVICE, &format!("f-{guest}"), &args.common.guest(guest), None).await?;
    }
    client
        .send(
            Method::POST,
            &format!("/2016-08-15/services/{SERVICE}/versions"),
            &[],
            "{}",
        )
        .await?;
    client
        .send(
            Method::POST,
            &format!("/2016-08-15/services/{SERVICE}/aliases"),
            &[],
            json!({ "aliasName": "bench", "versionId": "1" }).to_string(),
        )
        .await?;

    let mut report = Report::new(&format!("starts ({})", args.guest));
    let invoke_path = |qualifier: &str, function: &str| {
        format!("/2016-08-15/services/{SERVICE}.{qualifier}/functions/{function}/invocations")
    };
    let sequential = async |what: &str, addr, path: String, headers: Vec<(&'static str, String)>| {
        load::posts(addr, &path, headers, 1, Until::Count(args.iterations))
            .await?
            .checked(what)
    };

    step("baseline latency");
    let base = sequential("baseline", baseline.addr, "/".into(), vec![]).await?;
    let base_p50 = base.latency_us.value_at_quantile(0.5) as f64;
    let mut curves: Vec<(String, Histogram<u64>)> = Vec::new();
    let mut push = |report: &mut Report, name: &str, h: &Histogram<u64>, note: &str| {
        let row = Row::from_histogram(name, h, 1000.0);
        let ratio = row.p50_us / base_p50.max(1.0);
        report.rows.push(row.ratio(ratio).note(note));
        curves.push((name.to_string(), h.clone()));
    };
    push(
        &mut report,
        "axum hello-world",
        &base.latency_us,
        "baseline, p50 ratio = 1",
    );

    step("warm starts");
    let warm = sequential("warm", server.addr, invoke_path("LATEST", "f"), vec![]).await?;
    push(&mut report, "warm", &warm.latency_us, "idle instance reused");

    step("cold starts");
    let force_cold = vec![("x-wasmfc-start", "cold".into())];
    let cold = sequential("cold", server.addr, invoke_path("LATEST", "f"), force_cold).await?;
    push(
        &mut report,
        "cold",
        &cold.latency_us,
        "new instance, code loaded from the on-disk artifact",
    );

    step("provisioned starts");
    set_provisioned(&client, "f", 1).await?;
    let provisioned = sequential("provisioned", server.addr, invoke_path("bench", "f"), vec![]).await?;
    push(
        &mut report,
        "provisioned",
        &provisioned.latency_us,
        "through an alias, target 1",
    );

    for guest in &also {
        step(&format!("starts of {guest}"));
        let function = format!("f-{guest}");
        let times = async |what: &str, qualifier: &str, headers: Vec<(&'static str, String)>| {
            let path = invoke_path(qualifier, &function);
            load::posts(server.addr, &path, headers, 1, Until::Count(args.also_iterations))
                .await?
                .checked(what)
        };
        let warm = times("warm", "LATEST", vec![]).await?;
        push(
            &mut report,
            &format!("warm ({guest})"),
            &warm.latency_us,
            "idle instance reused",
        );
        let cold = times("cold", "LATEST", vec![("x-wasmfc-start", "cold".into())]).await?;
        push(
            &mut report,
            &format!("cold ({guest})"),
            &cold.latency_us,
            "code loaded from the artifact",
        );
        set_provisioned(&client, &function, 1).await?;
        let provisioned = times("provisioned", "bench", vec![]).await?;
        push(
            &mut report,
            &format!("provisioned ({guest})"),
            &provisioned.latency_us,
            "through an alias, target 1",
        );
    }

    step("fresh uploads");
    let wasm = std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let mut fresh = new_histogram();
    for i in 0..args.uploads {
        let code = with_custom_section(&wasm, &format!("wasmfc-bench-{i}-{}", uuid::Uuid::new_v4()));
        let t = Instant::now();
        upload_code(&client, SERVICE, "fresh", code).await?;
        client
            .send(Method::POST, &invoke_path("LATEST", "fresh"), &[], "\"bench\"")
            .await?;
        fresh.saturating_record(t.elapsed().as_micros() as u64);
    }
    push(
        &mut report,
        "fresh upload → first response",
        &fresh,
        "compile + store + cold start",
    );

    step("throughput: warm vs baseline");
    let targets = [
        ("throughput: axum hello-world", baseline.addr, "/".to_string()),
        ("throughput: warm invoke", server.addr, invoke_path("LATEST", "f")),
    ];
    let duration = Duration::from_secs(args.duration);
    let results = load::alternating(&targets, args.connections, THROUGHPUT_ROUNDS, duration, None).await?;
    let base_rps = results.first().map_or(1.0, LoadResult::per_second);
    for ((name, _, _), r) in targets.iter().zip(&results) {
        report.rows.push(
            Row::from_histogram(*name, &r.latency_us, 1000.0)
                .per_second(r.per_second())
                .ratio(r.per_second() / base_rps)
                .note(format!(
                    "{} connections, {THROUGHPUT_ROUNDS} × {} s alternating, ratio of req/s",
                    args.connections, args.duration
                )),
        );
    }

    step("memory of provisioned instances");
    if args.provisioned > 0 {
        let before = server.rss_bytes().unwrap_or(0);
        set_provisioned(&client, "f", args.provisioned).await?;
        let after = server.rss_bytes().unwrap_or(0);
        let added = after.saturating_sub(before);
        let mut row = Row::from_histogram(
            format!("{} provisioned instances", args.provisioned),
            &new_histogram(),
            1000.0,
        )
        .note(format!(
            "RSS +{:.1} MB ({:.1} KB each; server RSS {} MB)",
            added as f64 / 1048576.0,
            added as f64 / 1024.0 / args.provisioned as f64,
            after >> 20
        ));
        row.count = args.provisioned;
        report.rows.push(row);
    }
    progress.finish_and_clear();

    chart(&args.svg, &curves)?;
    report.print(args.common.json);
    if !args.common.json {
        println!("latency chart: {}", args.svg.display());
    }
    Ok(())
}

/// Sets the alias's provision target and waits until that many instances
/// are alive.
async fn set_provisioned(client: &FcClient, function: &str, target: u64) -> anyhow::Result<()> {
    let path = format!("/2016-08-15/services/{SERVICE}.bench/functions/{function}/provision-config");
    client
        .send(Method::PUT, &path, &[], json!({ "target": target }).to_string())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let doc = client.get_json(&path).await?;
        if doc["current"].as_u64() == Some(target) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("provisioning {target} instances: {doc}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The same code with a custom section appended: new bytes (so a new
/// compile), same behaviour. Valid for modules and components alike.
fn with_custom_section(wasm: &[u8], name: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// Latency by percentile, one line per mode, log scale.
fn chart(path: &std::path::Path, curves: &[(String, Histogram<u64>)]) -> anyhow::Result<()> {
    use plotters::prelude::*;

    const QUANTILES: [f64; 9] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0];
    let max_us = curves.iter().map(|(_, h)| h.max()).max().unwrap_or(1).max(1) as f64;
    let min_us = curves.iter().map(|(_, h)| h.min()).min().unwrap_or(1).max(1) as f64;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("wasmfc start latency by percentile (µs, log scale)", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0usize..QUANTILES.len() - 1, (min_us * 0.8..max_us * 1.2).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_labels(QUANTILES.len())
        .x_label_formatter(&|i| match QUANTILES.get(*i) {
            Some(1.0) => "max".into(),
            Some(0.0) => "min".into(),
            Some(q) => format!("p{}", q * 100.0),
            None => String::new(),
        })
        .y_desc("µs")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, (name, h)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(usize, f64)> = QUANTILES
            .iter()
            .enumerate()
            .map(|(x, q)| (x, h.value_at_quantile(*q).max(1) as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
