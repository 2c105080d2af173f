//! `wasmfc bench cluster`: nodes sharing one PostgreSQL, side by side in one
//! run.
//!
//! - *scale-out*: 20 ms sleeping tasks with `--task-concurrency 16`, bound
//!   by per-node task concurrency: completed tasks/s on one node, then on
//!   two nodes of one database (tasks submitted to both);
//! - *store*: no-op tasks on one node on the embedded SQLite and on
//!   PostgreSQL: completed tasks/s;
//! - *stop across nodes*: a CPU-bound task running on one node, stopped
//!   through the other, until `Stopped` is readable;
//! - *lease expiry*: a node running a task is killed (`kill -9`); the time
//!   until the task runs on the other node.
//!
//! Each configuration gets a fresh database on the PostgreSQL server that
//! `--admin-url` names (`scripts/bench-cluster.sh` starts a throwaway one).

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
use crate::store::postgres;

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// A PostgreSQL URL whose user may create databases (its `postgres`
    /// database, say): each configuration runs on a fresh one.
    #[arg(long, env = "WASMFC_BENCH_PG")]
    pub admin_url: String,
    /// Sleeping tasks per scale-out run: enough for the run on two nodes
    /// to last several seconds, so the submissions' start is a small part
    /// of it.
    #[arg(long, default_value_t = 10_000)]
    pub sleep_tasks: u64,
    /// No-op tasks per store run.
    #[arg(long, default_value_t = 20_000)]
    pub noop_tasks: u64,
    /// `--task-concurrency` of the store runs (both stores): on a shared
    /// store a task's steps each wait for a commit, so a node needs tasks
    /// in flight to keep its batches full.
    #[arg(long, default_value_t = 64)]
    pub noop_concurrency: usize,
    /// Stops measured across nodes.
    #[arg(long, default_value_t = 100)]
    pub stops: u32,
    /// Nodes killed to time lease expiry.
    #[arg(long, default_value_t = 5)]
    pub kills: u32,
    /// `--lease-secs` of the nodes.
    #[arg(long, default_value_t = 2)]
    pub lease_secs: u64,
}

const SERVICE: &str = "bench";

/// Fresh databases, dropped when the benchmark ends.
struct Databases {
    admin: String,
    made: Vec<String>,
}

impl Databases {
    async fn fresh(&mut self) -> anyhow::Result<String> {
        let name = format!("wasmfc_bench_{}_{}", std::process::id(), self.made.len());
        let url = postgres::create_database(&self.admin, &name)
            .await
            .context("creating a scratch database (--admin-url)")?;
        self.made.push(name);
        Ok(url)
    }

    async fn drop_all(&self) {
        for name in &self.made {
            if let Err(e) = postgres::drop_database(&self.admin, name).await {
                eprintln!("dropping scratch database {name}: {e}");
            }
        }
    }
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let mut dbs = Databases {
        admin: args.admin_url.clone(),
        made: Vec::new(),
    };
    let result = measure(&args, &mut dbs).await;
    dbs.drop_all().await;
    let report = result?;
    report.print(args.common.json);
    Ok(())
}

async fn measure(args: &ClusterArgs, dbs: &mut Databases) -> anyhow::Result<Report> {
    let mut report = Report::new("cluster");
    let lease = args.lease_secs.to_string();
    let node_flags = |store: &str, concurrency: &str| -> Vec<String> {
        let mut flags = vec!["--task-concurrency".to_string(), concurrency.to_string()];
        if store != "sqlite" {
            flags.extend(["--store".into(), store.into(), "--lease-secs".into(), lease.clone()]);
        }
        flags
    };

    // Scale-out: one node, then two, on 20 ms tasks.
    let mut one_node = 0.0;
    for nodes in [1usize, 2] {
        let url = dbs.fresh().await?;
        let servers = start_nodes(nodes, &node_flags(&url, "16")).await?;
        setup(args, &servers[0], "sleep").await?;
        wait_served_everywhere(&servers, "sleep").await?;
        let rate = completed_per_second(&servers, "sleep", "20", args.sleep_tasks).await?;
        if nodes == 1 {
            one_node = rate;
        }
        let row = Row::from_histogram(format!("20 ms tasks, {nodes} node(s)"), &new_histogram(), 1000.0)
            .per_second(rate)
            .note(if nodes == 1 {
                "--task-concurrency 16 per node".to_string()
            } else {
                format!("{:.2}x one node", rate / one_node.max(f64::MIN_POSITIVE))
            });
        report.rows.push(row);
    }

    // The store: no-op tasks on one node, SQLite beside PostgreSQL.
    let mut on_sqlite = 0.0;
    for store in ["sqlite", "postgres"] {
        let target = if store == "sqlite" {
            "sqlite".to_string()
        } else {
            dbs.fresh().await?
        };
        let concurrency = args.noop_concurrency.to_string();
        let servers = start_nodes(1, &node_flags(&target, &concurrency)).await?;
        setup(args, &servers[0], "noop").await?;
        let rate = completed_per_second(&servers, "noop", "{}", args.noop_tasks).await?;
        if store == "sqlite" {
            on_sqlite = rate;
        }
        let note = if store == "sqlite" {
            format!("one node, the embedded store; --task-concurrency {concurrency}")
        } else {
            format!("one node; {:.2}x SQLite", rate / on_sqlite.max(f64::MIN_POSITIVE))
        };
        report.rows.push(
            Row::from_histogram(format!("no-op tasks on {store}"), &new_histogram(), 1000.0)
                .per_second(rate)
                .note(note),
        );
    }

    // Stop across nodes, and lease expiry.
    let url = dbs.fresh().await?;
    let mut servers = start_nodes(2, &node_flags(&url, "16")).await?;
    setup(args, &servers[0], "spin").await?;
    wait_served_everywhere(&servers, "spin").await?;
    report.rows.push(stop_across(&servers, args.stops).await?);
    report
        .rows
        .push(lease_expiry(&mut servers, args, &node_flags(&url, "16")).await?);
    Ok(report)
}

async fn start_nodes(n: usize, flags: &[String]) -> anyhow::Result<Vec<ChildServer>> {
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        servers.push(ChildServer::wasmfc(flags).await?);
    }
    Ok(servers)
}

/// Deploys `function` in task mode through `server`: without retries,
/// but for `spin`, whose task a lease expiry must retry elsewhere.
async fn setup(args: &ClusterArgs, server: &ChildServer, function: &str) -> anyhow::Result<()> {
    let retries = if function == "spin" { 3 } else { 0 };
    let client = server.client();
    deploy(
        &client,
        SERVICE,
        function,
        &args.common.guest(function),
        Some(json!({ "timeout": 600 })),
    )
    .await?;
    client
        .send(
            Method::PUT,
            &format!("/2016-08-15/services/{SERVICE}.LATEST/functions/{function}/async-invoke-config"),
            &[],
            json!({ "statefulInvocation": true, "maxAsyncRetryAttempts": retries }).to_string(),
        )
        .await?;
    Ok(())
}

/// Waits until every node knows `function` (registry changes travel by
/// `NOTIFY`).
async fn wait_served_everywhere(servers: &[ChildServer], function: &str) -> anyhow::Result<()> {
    for server in servers {
        let client = server.client();
        let path = format!("/2016-08-15/services/{SERVICE}/functions/{function}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get_json(&path).await.is_err() {
            if Instant::now() > deadline {
                bail!("{function} did not reach node {}", server.addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Submits `tasks` tasks of `function` spread over `servers` and answers
/// how many finished per second, from the first submit to the last end.
async fn completed_per_second(
    servers: &[ChildServer],
    function: &str,
    payload: &'static str,
    tasks: u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_node = tasks / servers.len() as u64;
    let submits = servers.iter().enumerate().map(|(i, server)| {
        let addr = server.addr;
        let path = format!("/2016-08-15/services/{SERVICE}/functions/{function}/invocations");
        let make: Arc<load::MakeRequest> = Arc::new(move |n| {
            load::post(
                addr,
                &path,
                &[
                    ("x-fc-invocation-type", "Async".into()),
                    ("x-fc-stateful-async-invocation-id", format!("t{i}-{n}")),
                ],
                Bytes::from_static(payload.as_bytes()),
            )
        });
        load::run(addr, 16, Until::Count(per_node), make)
    });
    for outcome in futures::future::join_all(submits).await {
        outcome?.checked("submitting tasks")?;
    }
    let clients: Vec<FcClient> = servers.iter().map(ChildServer::client).collect();
    let total = per_node * servers.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let mut finished = 0;
        for c in &clients {
            finished += super::tasks::finished_count(c).await?;
        }
        if finished >= total {
            return Ok(finished as f64 / started.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            bail!("only {finished} of {total} tasks finished");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Which of `servers` runs a task now (its in-flight gauge), if any.
async fn running_on(servers: &[ChildServer]) -> anyhow::Result<Option<usize>> {
    for (i, s) in servers.iter().enumerate() {
        if super::tasks::gauge(&s.client(), "wasmfc_tasks_in_flight").await? > 0.0 {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

async fn submit_spin(client: &FcClient, id: &str) -> anyhow::Result<String> {
    client
        .send(
            Method::POST,
            &format!("/2016-08-15/services/{SERVICE}/functions/spin/invocations"),
            &[
                ("x-fc-invocation-type", "Async"),
                ("x-fc-stateful-async-invocation-id", id),
            ],
            "{}",
        )
        .await?;
    Ok(format!(
        "/2016-08-15/services/{SERVICE}/functions/spin/stateful-async-invocations/{id}"
    ))
}

/// A spin task running on one node, stopped through the other.
async fn stop_across(servers: &[ChildServer], stops: u32) -> anyhow::Result<Row> {
    let mut stop_us = new_histogram();
    for i in 0..stops {
        let submit_to = &servers[i as usize % 2];
        let task = submit_spin(&submit_to.client(), &format!("stop-{i}")).await?;
        super::tasks::wait_status(&submit_to.client(), &task, "Running", Duration::from_secs(30)).await?;
        let runner = running_on(servers).await?.context("no node reports the running task")?;
        let other = servers[1 - runner].client();
        let t = Instant::now();
        other.send(Method::PUT, &task, &[], Bytes::new()).await?;
        super::tasks::wait_status(&other, &task, "Stopped", Duration::from_secs(30)).await?;
        stop_us.saturating_record(t.elapsed().as_micros() as u64);
    }
    Ok(Row::from_histogram("stop on node A, guest on node B", &stop_us, 1000.0)
        .note("Stop call sent to the other node → Stopped readable"))
}

/// Kills the node running a task and times the task's move to the other.
async fn lease_expiry(servers: &mut [ChildServer], args: &ClusterArgs, flags: &[String]) -> anyhow::Result<Row> {
    let mut moved_us = new_histogram();
    for i in 0..args.kills {
        let task = submit_spin(&servers[0].client(), &format!("kill-{i}")).await?;
        super::tasks::wait_status(&servers[0].client(), &task, "Running", Duration::from_secs(30)).await?;
        let runner = running_on(servers).await?.context("no node reports the running task")?;
        let survivor = servers[1 - runner].client();
        let killed = Instant::now();
        servers[runner].kill9();
        // Running again, on the survivor, once the lease lapsed.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = survivor.get_json(&task).await?;
            let runs = t["events"]
                .as_array()
                .map_or(0, |e| e.iter().filter(|e| e["status"] == "Running").count());
            if runs >= 2 {
                break;
            }
            if Instant::now() > deadline {
                bail!("task {task} did not move within 60 s: {t}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        moved_us.saturating_record(killed.elapsed().as_micros() as u64);
        survivor.send(Method::PUT, &task, &[], Bytes::new()).await?;
        servers[runner] = ChildServer::wasmfc(flags).await?;
    }
    Ok(
        Row::from_histogram("lease expiry: kill → Running elsewhere", &moved_us, 1000.0)
            .note(format!("--lease-secs {}", args.lease_secs)),
    )
}
