//! `wasmfc bench console`: the web console over a store of many tasks.
//!
//! - *seed*: `--tasks` no-op tasks submitted over HTTP and run to the end,
//!   while one listener reads the console's live feed (`/console/feed`);
//!   the feed row says how many state changes per second it delivered
//!   and whether it ever fell behind (a `resync` event);
//! - *pages*: the first page of a function's task list under several
//!   filters, each requested `--samples` times in a row, beside the FC
//!   API's `ListStatefulAsyncInvocations` with the same filter (the
//!   ratio is the console's page over the JSON list), and the list across
//!   functions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::CommonArgs;
use super::child::{ChildServer, deploy};
use super::load::{self, Until, new_histogram};
use super::report::{Report, Row};
use super::tasks::wait_finished;
use crate::client::FcClient;

#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Tasks in the store before the pages are measured.
    #[arg(long, default_value_t = 1_000_000)]
    pub tasks: u64,
    /// Concurrent keep-alive connections submitting.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Requests per measured page.
    #[arg(long, default_value_t = 200)]
    pub samples: u32,
}

const SERVICE: &str = "bench";
const FUNCTION: &str = "noop";

/// What the feed listener counted.
#[derive(Default)]
struct FeedCounts {
    changes: AtomicU64,
    succeeded: AtomicU64,
    resyncs: AtomicU64,
}

pub async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let server = ChildServer::wasmfc(&[]).await?;
    let client = server.client();
    deploy(&client, SERVICE, FUNCTION, &args.common.guest(FUNCTION), None).await?;
    client
        .send(
            Method::PUT,
            &format!("/2016-08-15/services/{SERVICE}.LATEST/functions/{FUNCTION}/async-invoke-config"),
            &[],
            json!({ "statefulInvocation": true, "maxAsyncRetryAttempts": 0 }).to_string(),
        )
        .await?;
    let mut report = Report::new("console");

    let counts = Arc::new(FeedCounts::default());
    let feed = tokio::spawn(listen(client.base().to_string(), counts.clone()));
    // The listener is subscribed once its response has started.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    seed(&server, &client, &args).await?;
    let seeded_in = started.elapsed();
    let drained = drain(&counts, args.tasks, Duration::from_secs(30)).await;
    feed.abort();
    let changes = counts.changes.load(Ordering::Relaxed);
    let mut feed_row = Row::from_histogram("live feed during the seed", &new_histogram(), 1000.0)
        .per_second(changes as f64 / seeded_in.as_secs_f64())
        .note(format!(
            "{changes} changes delivered, {} of {} Succeeded seen{}, {} resyncs (fell behind)",
            counts.succeeded.load(Ordering::Relaxed),
            args.tasks,
            if drained { "" } else { " (missing some)" },
            counts.resyncs.load(Ordering::Relaxed),
        ));
    feed_row.count = changes;
    report.rows.push(feed_row);

    let base = format!("/services/{SERVICE}/functions/{FUNCTION}");
    let views = [
        ("no filter", ""),
        ("status Succeeded", "status=Succeeded"),
        ("status Failed (none match)", "status=Failed"),
        ("several statuses", "status=Running&status=Failed&status=Stopped"),
        ("id prefix", "prefix=t-05"),
        ("oldest first, 100 a page", "order=asc&size=100"),
    ];
    for (name, query) in views {
        let page = sample(&client, &format!("/console{base}?{query}"), args.samples).await?;
        let mut row = Row::from_histogram(format!("first page: {name}"), &page, 1000.0);
        // The FC list takes one status; a view of several has no twin.
        if let Some(api) = api_query(query) {
            let json = sample(
                &client,
                &format!("/2016-08-15{base}/stateful-async-invocations?{api}"),
                args.samples,
            )
            .await?;
            let p95 = json.value_at_quantile(0.95);
            row = row
                .ratio(page.value_at_quantile(0.95) as f64 / p95.max(1) as f64)
                .note(format!(
                    "ratio: p95 over the FC API list's p95 ({:.2} ms)",
                    p95 as f64 / 1000.0
                ));
        }
        report.rows.push(row);
    }
    let all = sample(&client, "/console/tasks?status=Succeeded", args.samples).await?;
    report.rows.push(Row::from_histogram(
        "first page: every function, Succeeded",
        &all,
        1000.0,
    ));
    let overview = sample(&client, "/console", args.samples).await?;
    report.rows.push(
        Row::from_histogram("functions overview", &overview, 1000.0)
            .note("every function with its task counts by state"),
    );
    report.print(args.common.json);
    Ok(())
}

/// The FC API's query for a console filter (`invocationIdPrefix`,
/// `sortOrderByTime`, `limit`), or `None` when it filters by several
/// statuses, which the FC list cannot.
fn api_query(console: &str) -> Option<String> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut statuses = 0;
    let mut size = "20".to_string();
    for (k, v) in form_urlencoded::parse(console.as_bytes()) {
        let key = match k.as_ref() {
            "status" => {
                statuses += 1;
                "status"
            }
            "prefix" => "invocationIdPrefix",
            "order" => "sortOrderByTime",
            "size" => {
                size = v.to_string();
                continue;
            }
            _ => continue,
        };
        q.append_pair(key, &v);
    }
    q.append_pair("limit", &size);
    (statuses <= 1).then(|| q.finish())
}

/// Submits `args.tasks` no-op tasks and waits until all have finished.
async fn seed(server: &ChildServer, client: &FcClient, args: &ConsoleArgs) -> anyhow::Result<()> {
    let addr = server.addr;
    let path = format!("/2016-08-15/services/{SERVICE}/functions/{FUNCTION}/invocations");
    let make: Arc<load::MakeRequest> = Arc::new(move |n| {
        load::post(
            addr,
            &path,
            &[
                ("x-fc-invocation-type", "Async".into()),
                ("x-fc-stateful-async-invocation-id", format!("t-{n:07}")),
            ],
            Bytes::from_static(b"{}"),
        )
    });
    load::run(addr, args.connections, Until::Count(args.tasks), make)
        .await?
        .checked("submitting tasks")?;
    let finished = wait_finished(client, args.tasks, Duration::from_secs(3600)).await?;
    if finished < args.tasks {
        bail!("only {finished} of {} tasks finished", args.tasks);
    }
    Ok(())
}

/// Reads the function's live feed, counting its events, until aborted.
async fn listen(base: String, counts: Arc<FeedCounts>) -> anyhow::Result<()> {
    let url = format!("{base}/console/feed?service={SERVICE}&function={FUNCTION}");
    let mut response = reqwest::get(&url).await.context("opening the live feed")?;
    if !response.status().is_success() {
        bail!("the live feed answered {}", response.status());
    }
    // Events may split across chunks; keep the unfinished line.
    let mut pending = String::new();
    while let Some(chunk) = response.chunk().await? {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        let complete = pending.rfind('\n').map_or(0, |i| i + 1);
        for line in pending[..complete].lines() {
            if line == "event: task" {
                counts.changes.fetch_add(1, Ordering::Relaxed);
            } else if line == "event: resync" {
                counts.resyncs.fetch_add(1, Ordering::Relaxed);
            } else if line.starts_with("data:") && line.contains("\"Succeeded\"") {
                counts.succeeded.fetch_add(1, Ordering::Relaxed);
            }
        }
        pending.drain(..complete);
    }
    Ok(())
}

/// Waits until the feed has shown `n` tasks Succeeded (or `within` passed).
async fn drain(counts: &FeedCounts, n: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while counts.succeeded.load(Ordering::Relaxed) < n {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Requests `path` `samples` times in a row; latency in microseconds.
async fn sample(client: &FcClient, path: &str, samples: u32) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut h = new_histogram();
    for _ in 0..samples {
        let t = Instant::now();
        let reply = client
            .send(Method::GET, path, &[], Bytes::new())
            .await
            .with_context(|| format!("GET {path}"))?;
        h.saturating_record(t.elapsed().as_micros() as u64);
        if reply.body.is_empty() {
            bail!("GET {path} answered an empty body");
        }
    }
    Ok(h)
}
