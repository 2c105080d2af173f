//! `wasmfc bench orchestrations`: the orchestration engine under load.
//!
//! - *fan-out*: many `fan-out` instances (each calls `square` N times in
//!   parallel and sums), started by concurrent clients that wait server-side
//!   for each to finish (`?timeout=&pollingInterval=`): end-to-end latency
//!   per orchestration, and activity work items per second;
//! - *plain tasks*, same run, same server: as many `square` stateful async
//!   invocations, so the orchestration overhead shows as a ratio;
//! - *waiting*: many `approval` instances left waiting for an event; the
//!   server's RSS with all of them waiting, then raise-event round trips
//!   (answer, and event → instance Completed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::CommonArgs;
use super::child::{ChildServer, deploy};
use super::load::{self, Until, new_histogram};
use super::report::{Report, Row};
use crate::client::FcClient;

#[derive(Debug, Clone, clap::Args)]
pub struct OrchestrationsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// fan-out instances.
    #[arg(long, default_value_t = 2_000)]
    pub instances: u64,
    /// Activities per fan-out instance.
    #[arg(long, default_value_t = 10)]
    pub activities: u64,
    /// Concurrent clients starting orchestrations.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Waiting `approval` instances (0 skips the part).
    #[arg(long, default_value_t = 100_000)]
    pub waiting: u64,
    /// Raise-event round trips measured among the waiting instances.
    #[arg(long, default_value_t = 500)]
    pub raises: u64,
}

const SERVICE: &str = "bench";
const ROOT: &str = "/runtime/webhooks/durabletask";

use super::tasks::gauge as metric;

async fn wait_metric(client: &FcClient, name: &str, at_least: f64, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let v = metric(client, name).await?;
        if v >= at_least {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} reached only {v} of {at_least} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(args: OrchestrationsArgs) -> anyhow::Result<()> {
    let server = ChildServer::wasmfc(&[]).await?;
    let client = server.client();
    for (name, guest) in [
        ("square", "square"),
        ("hello", "hello"),
        ("fan-out", "fan-out"),
        ("approval", "approval"),
    ] {
        deploy(&client, SERVICE, name, &args.common.guest(guest), None).await?;
    }
    client
        .send(
            Method::PUT,
            &format!("/2016-08-15/services/{SERVICE}.LATEST/functions/square/async-invoke-config"),
            &[],
            json!({ "statefulInvocation": true, "maxAsyncRetryAttempts": 0 }).to_string(),
        )
        .await?;
    let mut report = Report::new("orchestrations");
    let addr = server.addr;
    let work_items = args.instances * args.activities;

    // fan-out, end to end.
    let body = Bytes::from(json!({ "n": args.activities }).to_string());
    let make: Arc<load::MakeRequest> = Arc::new(move |n| {
        load::post(
            addr,
            &format!("{ROOT}/orchestrators/fan-out/fo-{n}?timeout=300&pollingInterval=1"),
            &[("content-type", "application/json".into())],
            body.clone(),
        )
    });
    let fan = load::run(addr, args.connections, Until::Count(args.instances), make)
        .await?
        .checked("fan-out orchestrations")?;
    let completed = metric(&client, "wasmfc_orchestrations_finished_total").await?;
    if (completed as u64) < args.instances {
        bail!("only {completed} of {} fan-out instances finished", args.instances);
    }
    let activity_rate = work_items as f64 / fan.elapsed.as_secs_f64();
    report.rows.push(
        Row::from_histogram(
            format!("fan-out ({} activities), start → Completed", args.activities),
            &fan.latency_us,
            1000.0,
        )
        .per_second(fan.per_second())
        .note(format!(
            "{} instances, {} concurrent clients; {:.0} activity work items/s",
            args.instances, args.connections, activity_rate
        )),
    );

    // The same work items as plain stateful async invocations.
    let before = metric(&client, "wasmfc_tasks_finished_total").await?;
    let path = format!("/2016-08-15/services/{SERVICE}/functions/square/invocations");
    let make: Arc<load::MakeRequest> = Arc::new(move |n| {
        load::post(
            addr,
            &path,
            &[
                ("x-fc-invocation-type", "Async".into()),
                ("x-fc-stateful-async-invocation-id", format!("sq-{n}")),
            ],
            Bytes::from((n % 100).to_string()),
        )
    });
    let started = Instant::now();
    load::run(addr, args.connections, Until::Count(work_items), make)
        .await?
        .checked("plain square tasks")?;
    wait_metric(
        &client,
        "wasmfc_tasks_finished_total",
        before + work_items as f64,
        Duration::from_secs(600),
    )
    .await?;
    let task_rate = work_items as f64 / started.elapsed().as_secs_f64();
    report.rows.push(
        Row::from_histogram("activity work items (orchestrated)", &new_histogram(), 1000.0)
            .per_second(activity_rate)
            .ratio(activity_rate / task_rate)
            .note("ratio: of the plain-task rate below"),
    );
    report.rows.push(
        Row::from_histogram("plain square tasks, submit → finished", &new_histogram(), 1000.0)
            .per_second(task_rate)
            .ratio(1.0)
            .note(format!("{work_items} stateful async invocations")),
    );

    if args.waiting > 0 {
        let rss_before = server.rss_bytes().unwrap_or(0);
        let runs_before = metric(&client, "wasmfc_orchestration_runs_total").await?;
        let body = Bytes::from(json!({ "timeoutMs": 86_400_000u64 }).to_string());
        let make: Arc<load::MakeRequest> = Arc::new(move |n| {
            load::post(
                addr,
                &format!("{ROOT}/orchestrators/approval/wait-{n}"),
                &[("content-type", "application/json".into())],
                body.clone(),
            )
        });
        let started = Instant::now();
        let starts = load::run(addr, args.connections, Until::Count(args.waiting), make)
            .await?
            .checked("starting waiting instances")?;
        wait_metric(
            &client,
            "wasmfc_orchestration_runs_total",
            runs_before + args.waiting as f64,
            Duration::from_secs(1800),
        )
        .await?;
        // Let the last commits land and the allocator settle.
        loop {
            if metric(&client, "wasmfc_orchestrations_in_memory").await? == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let all_waiting = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = server.rss_bytes().unwrap_or(0);
        report.rows.push(
            Row::from_histogram("start approval (202)", &starts.latency_us, 1000.0)
                .per_second(starts.per_second())
                .note(format!(
                    "{} instances all waiting after {:.1} s; server RSS {:.0} MB ({:+.0} MB, {:.1} KB per waiting instance)",
                    args.waiting,
                    all_waiting.as_secs_f64(),
                    rss as f64 / 1048576.0,
                    (rss as f64 - rss_before as f64) / 1048576.0,
                    (rss as f64 - rss_before as f64) / 1024.0 / args.waiting as f64
                )),
        );

        let mut answered = new_histogram();
        let mut round_trip = new_histogram();
        let step = (args.waiting / args.raises.max(1)).max(1);
        for i in 0..args.raises.min(args.waiting) {
            let id = format!("wait-{}", i * step);
            let t = Instant::now();
            let r = client
                .send(
                    Method::POST,
                    &format!("{ROOT}/instances/{id}/raiseEvent/Approval"),
                    &[],
                    Bytes::from_static(b"\"bench\""),
                )
                .await?;
            if r.status.as_u16() != 202 {
                bail!("raising an event to {id}: {}", r.status);
            }
            answered.saturating_record(t.elapsed().as_micros() as u64);
            loop {
                let s = client
                    .get_json(&format!("{ROOT}/instances/{id}?showInput=false"))
                    .await?;
                if s["runtimeStatus"] == "Completed" {
                    break;
                }
                if t.elapsed() > Duration::from_secs(30) {
                    bail!("{id} did not complete after its event: {s}");
                }
                tokio::time::sleep(Duration::from_micros(250)).await;
            }
            round_trip.saturating_record(t.elapsed().as_micros() as u64);
        }
        report.rows.push(
            Row::from_histogram("raise event (202)", &answered, 1000.0)
                .note(format!("among {} waiting instances", args.waiting)),
        );
        report.rows.push(
            Row::from_histogram("raise event → Completed", &round_trip, 1000.0)
                .note("replay from the journal, one `hello` activity, commit"),
        );
    }
    report.print(args.common.json);
    Ok(())
}
