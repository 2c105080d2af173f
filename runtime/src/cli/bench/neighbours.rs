//! `wasmfc bench neighbours`: how much CPU-bound guests delay a short
//! request. Eight (by default) closed loops invoke `spin` with a fixed
//! amount of work while one client invokes `hello` every 2 ms (a request
//! now and then, as an API's clients send them); the figures are `hello`'s
//! latency alone and beside the spinners, and the spinners' throughput
//! alone and beside `hello`.
//!
//! Each configuration is a server of its own in the same run: the default
//! (CPU-bound guests move to the guest threads) and `--no-guest-offload`
//! (every guest stays on its serving thread), so the comparison is side by
//! side on the same machine state.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::CommonArgs;
use super::child::{ChildServer, deploy};
use super::load::{self, LoadResult, MakeRequest, Until};
use super::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct NeighboursArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Closed loops invoking `spin` at once.
    #[arg(long, default_value_t = 8)]
    pub spinners: usize,
    /// Iterations of `spin` per invocation (~20-40 ms of CPU by default).
    #[arg(long, default_value_t = 20_000_000)]
    pub spin_iterations: u64,
    /// Milliseconds the `hello` client waits after each answer.
    #[arg(long, default_value_t = 2)]
    pub hello_pause_ms: u64,
    /// Seconds each phase is measured.
    #[arg(long, default_value_t = 8)]
    pub duration: u64,
}

const SPIN: &str = "/2016-08-15/services/bench/functions/spin/invocations";
const HELLO: &str = "/2016-08-15/services/bench/functions/hello/invocations";

/// What one configuration measured.
struct Measured {
    hello_alone: LoadResult,
    spin_alone: LoadResult,
    hello_beside: LoadResult,
    spin_beside: LoadResult,
}

pub async fn run(args: NeighboursArgs) -> anyhow::Result<()> {
    let configs: [(&str, &[&str]); 2] = [("offload", &[]), ("inline", &["--no-guest-offload"])];
    let mut measured = Vec::new();
    for (name, flags) in configs {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        measured.push((name, measure(&args, &flags).await?));
    }
    let mut report = Report::new("neighbours");
    let inline_spin = measured
        .iter()
        .find(|(n, _)| *n == "inline")
        .map_or(0.0, |(_, m)| m.spin_beside.per_second());
    for (name, m) in &measured {
        let flag = if *name == "inline" { " (--no-guest-offload)" } else { "" };
        report.rows.push(
            Row::from_histogram(format!("{name}: hello alone{flag}"), &m.hello_alone.latency_us, 1000.0)
                .per_second(m.hello_alone.per_second()),
        );
        report.rows.push(
            Row::from_histogram(
                format!("{name}: hello beside {} spinning", args.spinners),
                &m.hello_beside.latency_us,
                1000.0,
            )
            .per_second(m.hello_beside.per_second()),
        );
        report.rows.push(
            Row::from_histogram(format!("{name}: spin alone"), &m.spin_alone.latency_us, 1000.0)
                .per_second(m.spin_alone.per_second()),
        );
        let mut beside = Row::from_histogram(format!("{name}: spin beside hello"), &m.spin_beside.latency_us, 1000.0)
            .per_second(m.spin_beside.per_second())
            .note("ratio: spin throughput against inline");
        if inline_spin > 0.0 {
            beside = beside.ratio(m.spin_beside.per_second() / inline_spin);
        }
        report.rows.push(beside);
    }
    report.print(args.common.json);
    Ok(())
}

async fn measure(args: &NeighboursArgs, flags: &[String]) -> anyhow::Result<Measured> {
    let server = ChildServer::wasmfc(flags).await?;
    let client = server.client();
    let settings = serde_json::json!({ "timeout": 60 });
    deploy(&client, "bench", "spin", &args.common.guest("spin"), Some(settings)).await?;
    deploy(&client, "bench", "hello", &args.common.guest("hello"), None).await?;
    let addr = server.addr;
    let event = Bytes::from(args.spin_iterations.to_string());
    let spin: Arc<MakeRequest> = Arc::new(move |_| load::post(addr, SPIN, &[], event.clone()));
    let hello: Arc<MakeRequest> = Arc::new(move |_| load::post(addr, HELLO, &[], Bytes::from_static(b"bench")));
    let phase = Until::Elapsed(Duration::from_secs(args.duration));
    let pause = Some(Duration::from_millis(args.hello_pause_ms));
    // Warm both, so every phase runs on warm instances.
    load::run(
        addr,
        args.spinners,
        Until::Count(args.spinners as u64 * 2),
        spin.clone(),
    )
    .await?;
    load::run(addr, 1, Until::Count(200), hello.clone()).await?;
    let hello_alone = load::run_paced(addr, 1, phase, hello.clone(), pause)
        .await?
        .checked("hello alone")?;
    let spin_alone = load::run(addr, args.spinners, phase, spin.clone())
        .await?
        .checked("spin alone")?;
    let (hello_beside, spin_beside) = tokio::join!(
        load::run_paced(addr, 1, phase, hello.clone(), pause),
        load::run(addr, args.spinners, phase, spin.clone())
    );
    Ok(Measured {
        hello_alone,
        spin_alone,
        hello_beside: hello_beside?.checked("hello beside the spinners")?,
        spin_beside: spin_beside?.checked("spin beside hello")?,
    })
}
