//! `wasmfc bench http`: sync InvokeFunction over loopback HTTP, beside a
//! plain axum hello-world route measured in the same run with the same
//! generator. The ratio says what wasmfc (routing, registry, pool, engine,
//! the guest) costs on top of the HTTP stack itself.
//!
//! The last rows drive the same service in-process (`tower::ServiceExt::oneshot`,
//! no sockets): what routing, middlewares, registry,
//! pool, engine and rendering cost per request without hyper and the
//! kernel's TCP — the part of the gap that is ours to shrink.

use std::time::{Duration, Instant};

use axum::body::Body;
use clap::Parser;
use http::Request;
use tower::ServiceExt;

use super::CommonArgs;
use super::child::{ChildServer, deploy};
use super::load::{self, Until};
use super::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds each target is measured (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

pub async fn run(args: HttpArgs) -> anyhow::Result<()> {
    let baseline = ChildServer::baseline().await?;
    let server = ChildServer::wasmfc(&[]).await?;
    let client = server.client();
    deploy(&client, "bench", "hello", &args.common.guest("hello"), None).await?;
    deploy(&client, "bench", "noop", &args.common.guest("noop"), None).await?;

    let targets = [
        ("axum hello-world (baseline)", baseline.addr, "/".to_string()),
        (
            "wasmfc invoke noop",
            server.addr,
            "/2016-08-15/services/bench/functions/noop/invocations".to_string(),
        ),
        (
            "wasmfc invoke hello",
            server.addr,
            "/2016-08-15/services/bench/functions/hello/invocations".to_string(),
        ),
    ];
    let mut report = Report::new("http");
    let mut base_rps = None;
    for (name, addr, path) in targets {
        let warm_up = Until::Elapsed(Duration::from_secs(1));
        load::posts(addr, &path, vec![], args.connections, warm_up).await?;
        let measured = Until::Elapsed(Duration::from_secs(args.duration));
        let child = if addr == server.addr { &server } else { &baseline };
        let cpu_before = child.cpu_time();
        let result = load::posts(addr, &path, vec![], args.connections, measured)
            .await?
            .checked(name)?;
        let rps = result.per_second();
        let cpu = match (cpu_before, child.cpu_time()) {
            (Some(before), Some(after)) if result.ok > 0 => format!(
                ", server CPU {:.1} µs/req",
                (after - before).as_secs_f64() * 1e6 / result.ok as f64
            ),
            _ => String::new(),
        };
        let rss = child
            .rss_bytes()
            .map(|b| format!(", server RSS {} MB", b >> 20))
            .unwrap_or_default();
        let base = *base_rps.get_or_insert(rps);
        report.rows.push(
            Row::from_histogram(name, &result.latency_us, 1000.0)
                .per_second(rps)
                .ratio(rps / base)
                .note(format!("{} connections{cpu}{rss}", args.connections)),
        );
    }
    report.rows.extend(in_process(&args, base_rps.unwrap_or(1.0)).await?);
    report.print(args.common.json);
    Ok(())
}

/// Sync invokes through the server's service with no HTTP server, for a
/// fifth of `duration` each: `noop` and `hello` one request at a time, then
/// `noop` from as many concurrent tasks as the HTTP runs had connections.
async fn in_process(args: &HttpArgs, base_rps: f64) -> anyhow::Result<Vec<Row>> {
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        serve: crate::cli::serve::ServeCommand,
    }
    let data_dir = tempfile::Builder::new().prefix("wasmfc-bench-").tempdir()?;
    let serve = Serve::try_parse_from(["serve".as_ref(), "--data-dir".as_ref(), data_dir.path().as_os_str()])?.serve;
    // Deploy over a loopback listener with the ordinary client, then drop it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = serve.build_state(addr).await?;
    let router = crate::api::service(state);
    let server = tokio::spawn(axum::serve(listener, tower::make::Shared::new(router.clone())).into_future());
    let client = crate::client::FcClient::new(&crate::client::ClientArgs {
        endpoint: Some(format!("http://{addr}")),
        ..Default::default()
    });
    deploy(&client, "bench", "noop", &args.common.guest("noop"), None).await?;
    deploy(&client, "bench", "hello", &args.common.guest("hello"), None).await?;
    server.abort();

    let warm_up = Duration::from_millis(200);
    let measured = Duration::from_secs((args.duration / 5).max(1));
    let mut rows = Vec::new();
    for (guest, tasks) in [("noop", 1), ("hello", 1), ("noop", args.connections)] {
        let path = format!("/2016-08-15/services/bench/functions/{guest}/invocations");
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let router = router.clone();
            let path = path.clone();
            handles.push(tokio::spawn(async move {
                let mut histogram = load::new_histogram();
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < warm_up + measured {
                    let t = Instant::now();
                    let resp = router
                        .clone()
                        .oneshot(Request::post(&path).body(Body::empty())?)
                        .await?;
                    if !resp.status().is_success() {
                        anyhow::bail!("in-process invoke answered {}", resp.status());
                    }
                    drop(resp);
                    if t.duration_since(start) >= warm_up {
                        histogram.saturating_record(t.elapsed().as_nanos() as u64);
                        n += 1;
                    }
                }
                Ok((histogram, n))
            }));
        }
        let mut histogram = load::new_histogram();
        let mut n = 0;
        for h in handles {
            let (part, count) = h.await??;
            histogram.add(part)?;
            n += count;
        }
        let rps = n as f64 / measured.as_secs_f64();
        rows.push(
            Row::from_histogram(format!("in-process, invoke {guest} ×{tasks}"), &histogram, 1.0)
                .per_second(rps)
                .ratio(rps / base_rps)
                .note(format!("{tasks} concurrent tasks, no sockets")),
        );
    }
    Ok(rows)
}
