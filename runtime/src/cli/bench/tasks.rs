//! `wasmfc bench tasks`: task mode end to end, over HTTP.
//!
//! - *accepted*: async InvokeFunction calls with a caller-given id, each
//!   answered 202 only after the task is in the store;
//! - *completed*: the same tasks of the `noop` guest, from the first submit
//!   until the server reports all of them finished (so this includes
//!   acceptance, queueing, dispatch, the invocation and the final commit);
//! - *stop*: a Running CPU-bound `spin` task, from sending
//!   StopStatefulAsyncInvocation until `Stopped` is readable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::CommonArgs;
use super::child::{ChildServer, deploy};
use super::load::{self, Until, new_histogram};
use super::report::{Report, Row};
use crate::client::FcClient;

#[derive(Debug, Clone, clap::Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Tasks submitted.
    #[arg(long, default_value_t = 20_000)]
    pub tasks: u64,
    /// Concurrent keep-alive connections submitting.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Stop measurements.
    #[arg(long, default_value_t = 100)]
    pub stops: u32,
    /// `--task-concurrency` of the measured server (default: its own
    /// default, 4 x cores).
    #[arg(long)]
    pub task_concurrency: Option<usize>,
}

const SERVICE: &str = "bench";

pub async fn run(args: TasksArgs) -> anyhow::Result<()> {
    let mut serve_args = Vec::new();
    if let Some(n) = args.task_concurrency {
        serve_args.extend(["--task-concurrency".to_string(), n.to_string()]);
    }
    let server = ChildServer::wasmfc(&serve_args).await?;
    let client = server.client();
    deploy(&client, SERVICE, "noop", &args.common.guest("noop"), None).await?;
    deploy(
        &client,
        SERVICE,
        "spin",
        &args.common.guest("spin"),
        Some(json!({ "timeout": 600 })),
    )
    .await?;
    for f in ["noop", "spin"] {
        client
            .send(
                Method::PUT,
                &format!("/2016-08-15/services/{SERVICE}.LATEST/functions/{f}/async-invoke-config"),
                &[],
                json!({ "statefulInvocation": true, "maxAsyncRetryAttempts": 0 }).to_string(),
            )
            .await?;
    }
    let mut report = Report::new("tasks");

    // Accepted and completed, one run.
    let addr = server.addr;
    let path = format!("/2016-08-15/services/{SERVICE}/functions/noop/invocations");
    let make: Arc<load::MakeRequest> = Arc::new(move |n| {
        load::post(
            addr,
            &path,
            &[
                ("x-fc-invocation-type", "Async".into()),
                ("x-fc-stateful-async-invocation-id", format!("task-{n}")),
            ],
            Bytes::from_static(b"{}"),
        )
    });
    let started = Instant::now();
    let accepted = load::run(addr, args.connections, Until::Count(args.tasks), make)
        .await?
        .checked("submitting tasks")?;
    let finished = wait_finished(&client, args.tasks, Duration::from_secs(600)).await?;
    let completed_in = started.elapsed();
    report.rows.push(
        Row::from_histogram("accepted (HTTP 202)", &accepted.latency_us, 1000.0)
            .per_second(accepted.per_second())
            .note(format!("{} connections", args.connections)),
    );
    let mut completed = Row::from_histogram("completed noop tasks", &new_histogram(), 1000.0)
        .per_second(finished as f64 / completed_in.as_secs_f64())
        .note(format!(
            "{finished} finished {:.2} s after the first submit",
            completed_in.as_secs_f64()
        ));
    completed.count = finished;
    report.rows.push(completed);

    // Stop latency, one task at a time.
    let mut stop_us = new_histogram();
    let mut answer_us = new_histogram();
    for i in 0..args.stops {
        let id = format!("stop-{i}");
        client
            .send(
                Method::POST,
                &format!("/2016-08-15/services/{SERVICE}/functions/spin/invocations"),
                &[
                    ("x-fc-invocation-type", "Async"),
                    ("x-fc-stateful-async-invocation-id", &id),
                ],
                "{}",
            )
            .await?;
        let task = format!("/2016-08-15/services/{SERVICE}/functions/spin/stateful-async-invocations/{id}");
        wait_status(&client, &task, "Running", Duration::from_secs(30)).await?;
        let t = Instant::now();
        client.send(Method::PUT, &task, &[], Bytes::new()).await?;
        answer_us.saturating_record(t.elapsed().as_micros() as u64);
        wait_status(&client, &task, "Stopped", Duration::from_secs(30)).await?;
        stop_us.saturating_record(t.elapsed().as_micros() as u64);
    }
    report
        .rows
        .push(Row::from_histogram("stop call answered", &answer_us, 1000.0).note("Stop call sent → answer (Stopping)"));
    report.rows.push(
        Row::from_histogram("stop a running spin task", &stop_us, 1000.0).note("Stop call sent → Stopped readable"),
    );
    report.print(args.common.json);
    Ok(())
}

/// Polls `/metrics` until `n` tasks have finished; returns how many did.
pub(super) async fn wait_finished(client: &FcClient, n: u64, within: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + within;
    loop {
        let finished = finished_count(client).await?;
        if finished >= n {
            return Ok(finished);
        }
        if Instant::now() >= deadline {
            bail!("only {finished} of {n} tasks finished within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Tasks the server has seen finish (`wasmfc_tasks_finished_total`).
pub(super) async fn finished_count(client: &FcClient) -> anyhow::Result<u64> {
    Ok(gauge(client, "wasmfc_tasks_finished_total").await? as u64)
}

/// The sum of a metric's samples on the server.
pub(super) async fn gauge(client: &FcClient, name: &str) -> anyhow::Result<f64> {
    let text = client.send(Method::GET, "/metrics", &[], Bytes::new()).await?.body;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Polls a task until it reaches `status`.
pub(super) async fn wait_status(client: &FcClient, path: &str, status: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let task = client.get_json(path).await?;
        let now = task["status"].as_str().unwrap_or_default();
        if now == status {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(anyhow::anyhow!("task {path} is {now}, not {status}")).context("waiting for a task");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}
