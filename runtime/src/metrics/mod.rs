//! Counters of what happens as it happens: invocations (by function,
//! start kind and outcome), their duration and fuel, refused signatures,
//! and the last hour by minute (`minutes`).
//!
//! This module sits below the pool and the API: the pool reports every
//! invocation it runs here (sync, async task, HTTP trigger, activity) and
//! the API counts refused signatures. Gauges that are facts about other
//! modules are read from them at scrape time by the API's `/metrics`
//! renderer (`api::metrics`), so nothing drifts and nothing here imports
//! upward.

pub mod minutes;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the invocation counter. A typed set rather than a list of
/// string pairs: recording an invocation is on every request's path, and
/// this costs one allocation (the function label) instead of seven.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    function: String,
    start: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    function: String,
}

/// One finished invocation, as the pool reports it.
#[derive(Debug, Clone, Copy)]
pub struct InvocationRecord<'a> {
    /// `service/function`.
    pub function: &'a str,
    /// `cold`, `warm` or `provisioned`.
    pub start: &'static str,
    /// `success`, or the FC error type of the failure.
    pub result: &'static str,
    pub duration: Duration,
    /// Fuel the guest consumed, when its function has a fuel budget.
    pub fuel: Option<u64>,
}

pub struct Metrics {
    registry: Registry,
    invocations: Family<InvocationLabels, Counter>,
    invocation_seconds: Family<FunctionLabel, Histogram>,
    fuel_consumed: Family<FunctionLabel, Counter>,
    pub auth_failures: Counter,
    /// The last hour by minute, for the console's charts.
    pub minutes: minutes::MinuteRing,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::for_node(None)
    }

    /// Metrics whose every sample carries `node="<id>"` when a node id is
    /// given, so the series of a cluster's nodes stay apart once scraped.
    pub fn for_node(node: Option<&str>) -> Metrics {
        let mut registry = match node {
            Some(id) => Registry::with_prefix_and_labels("wasmfc", node_labels(id)),
            None => Registry::with_prefix("wasmfc"),
        };
        let invocations = Family::<InvocationLabels, Counter>::default();
        registry.register(
            "invocations",
            "Invocations by function, start kind and outcome (sync, async tasks, HTTP triggers, activities)",
            invocations.clone(),
        );
        let invocation_seconds = Family::<FunctionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_01, 2.0, 24))
        });
        registry.register(
            "invocation_duration_seconds",
            "Guest execution time per invocation",
            invocation_seconds.clone(),
        );
        let fuel_consumed = Family::<FunctionLabel, Counter>::default();
        registry.register(
            "fuel_consumed",
            "Fuel (wasm instructions, roughly) consumed by functions with a fuel budget",
            fuel_consumed.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused for a missing or wrong signature",
            auth_failures.clone(),
        );
        Metrics {
            registry,
            invocations,
            invocation_seconds,
            fuel_consumed,
            auth_failures,
            minutes: minutes::MinuteRing::default(),
        }
    }

    pub fn record_invocation(&self, record: InvocationRecord<'_>) {
        let labels = InvocationLabels {
            function: record.function.to_string(),
            start: record.start,
            result: record.result,
        };
        self.invocations.get_or_create(&labels).inc();
        let function = FunctionLabel {
            function: labels.function,
        };
        if let Some(fuel) = record.fuel {
            self.fuel_consumed.get_or_create(&function).inc_by(fuel);
        }
        self.invocation_seconds
            .get_or_create(&function)
            .observe(record.duration.as_secs_f64());
        self.minutes
            .record_start(&function.function, record.start, record.duration);
    }

    /// Appends these metrics (without the closing `# EOF`) to `out`.
    pub fn encode_into(&self, out: &mut String) -> Result<(), std::fmt::Error> {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
    }
}

/// The constant labels of a node's samples.
pub fn node_labels(id: &str) -> impl Iterator<Item = (std::borrow::Cow<'static, str>, std::borrow::Cow<'static, str>)> {
    std::iter::once((
        std::borrow::Cow::Borrowed("node"),
        std::borrow::Cow::Owned(id.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_labels_every_sample() {
        let metrics = Metrics::for_node(Some("node-a"));
        metrics.record_invocation(InvocationRecord {
            function: "svc/fn",
            start: "cold",
            result: "success",
            duration: Duration::from_millis(1),
            fuel: None,
        });
        let mut out = String::new();
        metrics.encode_into(&mut out).unwrap();
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!samples.is_empty(), "{out}");
        assert!(samples.iter().all(|l| l.contains("node=\"node-a\"")), "{out}");
    }

    #[test]
    fn an_invocation_counts_once_with_its_labels_and_fuel() {
        let metrics = Metrics::new();
        let record = InvocationRecord {
            function: "svc/fn",
            start: "warm",
            result: "success",
            duration: Duration::from_millis(2),
            fuel: Some(1234),
        };
        metrics.record_invocation(record);
        metrics.record_invocation(InvocationRecord { fuel: None, ..record });
        let mut out = String::new();
        metrics.encode_into(&mut out).unwrap();
        assert!(
            out.contains(r#"wasmfc_invocations_total{function="svc/fn",start="warm",result="success"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(r#"wasmfc_fuel_consumed_total{function="svc/fn"} 1234"#),
            "{out}"
        );
    }
}
