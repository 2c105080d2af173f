//! `GET /metrics`: Prometheus (OpenMetrics text) metrics.
//!
//! The counters recorded as things happen ([`Metrics`]) are encoded first;
//! gauges that are facts about other modules (pool occupancy, compile-cache
//! counters, queue depth) are read from those modules at scrape time by a
//! collector, so nothing drifts.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::api::SharedState;
use crate::durable::Durable;
use crate::engine::Engine;
use crate::pool::Pool;
use crate::scheduler::Scheduler;

/// Reads engine and pool facts at scrape time.
#[derive(Debug)]
struct RuntimeCollector {
    engine: Engine,
    pool: Pool,
    scheduler: Scheduler,
    durable: Durable,
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.engine.stats();
        counter(
            &mut encoder,
            "code_compilations",
            "Wasm compiled from source (compiled-code cache misses)",
            stats.compilations.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "code_artifact_loads",
            "Compiled artifacts loaded from the disk cache (no recompilation)",
            stats.artifact_loads.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "code_memory_hits",
            "Code lookups answered from memory",
            stats.memory_hits.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "guest_offloads",
            "Guest calls that proved CPU-bound and moved to the guest threads",
            crate::engine::offload::moved(),
        )?;
        gauge(
            &mut encoder,
            "instances_live",
            "Instances alive (idle and busy)",
            self.pool.live_count() as i64,
        )?;
        gauge(
            &mut encoder,
            "instances_idle",
            "Idle instances ready for a warm start",
            self.pool.idle_count() as i64,
        )?;
        let (provisioned, provisioned_busy) = self.pool.provisioned_totals();
        gauge(
            &mut encoder,
            "instances_provisioned",
            "Provisioned instances alive (idle or serving)",
            provisioned as i64,
        )?;
        gauge(
            &mut encoder,
            "instances_provisioned_busy",
            "Provisioned instances serving an invocation now",
            provisioned_busy as i64,
        )?;
        let stats = self.scheduler.stats();
        counter(
            &mut encoder,
            "tasks_submitted",
            "Async tasks accepted (written to the store)",
            stats.submitted.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut encoder,
            "tasks_queued",
            "Tasks waiting in the queue",
            self.scheduler.queued() as i64,
        )?;
        gauge(
            &mut encoder,
            "tasks_in_flight",
            "Tasks dequeued or running",
            self.scheduler.in_flight() as i64,
        )?;
        let d = self.durable.stats();
        for (name, help, value) in [
            ("orchestrations_started", "Orchestration instances started", &d.started),
            (
                "orchestration_runs",
                "Orchestrator runs (each replays the journal from the start)",
                &d.runs,
            ),
            (
                "orchestrations_finished",
                "Orchestration instances that completed or failed",
                &d.finished,
            ),
            (
                "orchestration_activities_scheduled",
                "Activity tasks scheduled by orchestrations (attempts included)",
                &d.activities_scheduled,
            ),
            (
                "orchestration_activities_completed",
                "Activity tasks whose outcome reached their orchestration",
                &d.activities_completed,
            ),
        ] {
            counter(&mut encoder, name, help, value.load(Ordering::Relaxed))?;
        }
        gauge(
            &mut encoder,
            "orchestrations_in_memory",
            "Orchestration instances with a run under way or queued (waiting ones are not in memory)",
            self.durable.active_count() as i64,
        )?;
        let finished = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "tasks_finished",
            "Tasks that reached a terminal state, by state",
            None,
            finished.metric_type(),
        )?;
        for entry in stats.finished.iter() {
            let labels = [("state", *entry.key())];
            let c = ConstCounter::new(entry.value().load(Ordering::Relaxed));
            c.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

pub async fn render(State(app): State<SharedState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        encode(&app),
    )
        .into_response()
}

fn encode(app: &SharedState) -> String {
    let mut runtime = Registry::with_prefix_and_labels("wasmfc", crate::metrics::node_labels(app.cluster.node_id()));
    runtime.register_collector(Box::new(RuntimeCollector {
        engine: app.engine.clone(),
        pool: app.pool.clone(),
        scheduler: app.scheduler.clone(),
        durable: app.durable.clone(),
    }));
    let mut out = String::new();
    let encoded = app
        .metrics
        .encode_into(&mut out)
        .and_then(|()| prometheus_client::encoding::text::encode_registry(&mut out, &runtime))
        .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut out));
    if let Err(e) = encoded {
        tracing::error!(error = %e, "encoding metrics");
    }
    out
}
