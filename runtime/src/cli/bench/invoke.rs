//! `wasmfc bench invoke`: what one invocation costs inside the engine, with
//! no HTTP, registry or pool in the way.
//!
//! - `new-instance`: fresh store + instantiate (pooling allocator,
//!   `InstancePre`, copy-on-write memory) + call + drop — what every
//!   invocation costs when nothing is reused;
//! - `instantiate-only`: the same without the call;
//! - `warm-instance`: a call into a live instance (what the pool gives);
//! - `load-artifact`: loading compiled code from the on-disk artifact cache
//!   and linking it (deserialize + `instantiate_pre`), as a cold start after
//!   a restart or a scale to zero does;
//! - `+fuel` rows: the same warm call on an engine that meters fuel
//!   (`--fuel-metering`), beside the unmetered one, for `hello` and for
//!   `spin` (a tight loop, fuel's worst case); their ratio is to the
//!   unmetered twin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;

use super::CommonArgs;
use super::load::new_histogram;
use super::report::{Report, Row};
use crate::engine::{Engine, EngineConfig, InstanceSettings, InvocationContext, Target};

#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Measured iterations per scenario (after a tenth as many to warm up).
    #[arg(long, default_value_t = 20_000)]
    pub iterations: u64,
}

/// Runs `once` `warmup + iterations` times and records the nanoseconds it
/// reports for the last `iterations`.
async fn sample(
    warmup: u64,
    iterations: u64,
    mut once: impl AsyncFnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<Histogram<u64>> {
    let mut h = new_histogram();
    for i in 0..warmup + iterations {
        let ns = once().await?;
        if i >= warmup {
            h.saturating_record(ns);
        }
    }
    Ok(h)
}

/// A guest's settings for these measurements: 128 MB, nothing else.
fn settings() -> Arc<InstanceSettings> {
    Arc::new(InstanceSettings {
        env: vec![],
        memory_limit_mb: 128,
        run_initializer: false,
        allowed_outbound_hosts: Arc::default(),
        fuel_budget: None,
        reuse_http_instances: true,
    })
}

fn context() -> InvocationContext {
    let target = Target {
        service: "bench".into(),
        function: "bench".into(),
        qualifier: "LATEST".into(),
        version_id: "LATEST".into(),
    };
    InvocationContext::request("bench".into(), target, Duration::from_secs(60))
}

pub async fn run(args: InvokeArgs) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let engine = Engine::new(EngineConfig {
        cache_dir: cache.path().to_path_buf(),
        max_instances: 64,
        ..EngineConfig::default()
    })?;
    let settings = settings();
    let event = Bytes::from_static(b"bench");
    let mut report = Report::new("invoke");
    if !engine.pagemap_scan() {
        report.machine.push_str(" (no pagemap_scan: instance reset is slower)");
    }
    let warmup = (args.iterations / 10).max(1);

    let mut loaded = Vec::new();
    for guest in ["hello", "noop", "echo-wasi"] {
        let path = args.common.guest(guest);
        let wasm = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (build the example guests first: bash scripts/build-guests.sh)",
                path.display()
            )
        })?;
        let sha = crate::registry::sha256_hex(&wasm);
        let prepared = engine.validate(sha.clone(), Bytes::from(wasm.clone())).await?;

        loaded.push((guest, sha, wasm));

        let h = sample(warmup, args.iterations, async || {
            let ctx = context();
            let t = Instant::now();
            let mut instance = engine.instantiate(prepared.clone(), settings.clone(), None).await?;
            let out = instance.invoke(&ctx, event.clone()).await;
            drop(instance);
            let ns = t.elapsed().as_nanos() as u64;
            out.result.with_context(|| format!("{guest} failed"))?;
            Ok(ns)
        })
        .await?;
        report
            .rows
            .push(Row::from_histogram(format!("{guest}/new-instance"), &h, 1.0));
        if guest == "echo-wasi" {
            // A command is instantiated per invocation by design.
            continue;
        }

        let h = sample(warmup, args.iterations, async || {
            let t = Instant::now();
            let instance = engine.instantiate(prepared.clone(), settings.clone(), None).await?;
            drop(instance);
            Ok(t.elapsed().as_nanos() as u64)
        })
        .await?;
        report
            .rows
            .push(Row::from_histogram(format!("{guest}/instantiate-only"), &h, 1.0));

        let mut instance = engine.instantiate(prepared.clone(), settings.clone(), None).await?;
        let h = sample(warmup, args.iterations, async || {
            let ctx = context();
            let t = Instant::now();
            let out = instance.invoke(&ctx, event.clone()).await;
            let ns = t.elapsed().as_nanos() as u64;
            out.result.with_context(|| format!("{guest} failed"))?;
            Ok(ns)
        })
        .await?;
        report
            .rows
            .push(Row::from_histogram(format!("{guest}/warm-instance"), &h, 1.0));
    }
    // Loading compiled code from the on-disk artifact cache (what a cold
    // start after a restart or scale-to-zero pays before instantiating):
    // deserialize + link. Measured last: every load makes a new module,
    // which costs the other scenarios their instance-slot affinity.
    for (guest, sha, wasm) in loaded {
        let h = sample(0, (args.iterations / 20).max(10), async || {
            engine.forget(&sha);
            let wasm = wasm.clone();
            let t = Instant::now();
            engine.prepared(&sha, move || Ok(wasm)).await?;
            Ok(t.elapsed().as_nanos() as u64)
        })
        .await?;
        report
            .rows
            .push(Row::from_histogram(format!("{guest}/load-artifact"), &h, 1.0));
    }
    // Histograms here hold nanoseconds; the rows converted them. Ratios are
    // against hello on a new instance.
    if let Some(base) = report
        .rows
        .iter()
        .find(|r| r.name == "hello/new-instance")
        .map(|r| r.p50_us)
    {
        for row in &mut report.rows {
            row.ratio = Some(row.p50_us / base);
        }
    }
    fuel_rows(&args, &mut report).await?;
    report.print(args.common.json);
    Ok(())
}

/// A warm call on an engine without and with fuel metering, side by side,
/// for `hello` and a 100,000-iteration `spin`.
async fn fuel_rows(args: &InvokeArgs, report: &mut Report) -> anyhow::Result<()> {
    let iterations = (args.iterations / 10).max(100);
    let settings = settings();
    for (guest, event) in [("hello", "bench"), ("spin", "100000")] {
        let wasm = std::fs::read(args.common.guest(guest))
            .with_context(|| format!("reading {guest} (bash scripts/build-guests.sh)"))?;
        let sha = crate::registry::sha256_hex(&wasm);
        let mut plain_p50 = None;
        for metered in [false, true] {
            let cache = tempfile::tempdir()?;
            let engine = Engine::new(EngineConfig {
                cache_dir: cache.path().to_path_buf(),
                max_instances: 4,
                fuel_metering: metered,
                ..EngineConfig::default()
            })?;
            let prepared = engine.validate(sha.clone(), Bytes::from(wasm.clone())).await?;
            let mut instance = engine.instantiate(prepared, settings.clone(), None).await?;
            let event = Bytes::from_static(event.as_bytes());
            let h = sample(iterations / 10, iterations, async || {
                let ctx = context();
                let t = Instant::now();
                let out = instance.invoke(&ctx, event.clone()).await;
                let ns = t.elapsed().as_nanos() as u64;
                out.result.with_context(|| format!("{guest} failed"))?;
                Ok(ns)
            })
            .await?;
            let name = format!(
                "{guest}/warm-instance{}",
                if metered { "+fuel" } else { " (fuel twin)" }
            );
            let mut row = Row::from_histogram(name, &h, 1.0);
            let base = *plain_p50.get_or_insert(row.p50_us);
            row.ratio = Some(row.p50_us / base);
            report.rows.push(row);
        }
    }
    Ok(())
}
