//! Benchmark results: one row per measured thing, printed as a table or as
//! JSON (`--json`) for scripts and `docs/benchmarks.md`.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use hdrhistogram::Histogram;
use serde::Serialize;

/// One measured thing.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured, e.g. `hello/new-instance`.
    pub name: String,
    /// Samples (requests, invocations, tasks).
    pub count: u64,
    /// Throughput, where the run measured one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Throughput or p50 relative to the run's baseline row (higher = more
    /// of the baseline's throughput; for latencies, times the baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// A row from a histogram whose values are in `unit_ns` nanoseconds.
    pub fn from_histogram(name: impl Into<String>, h: &Histogram<u64>, unit_ns: f64) -> Row {
        let us = |v: u64| v as f64 * unit_ns / 1000.0;
        Row {
            name: name.into(),
            count: h.len(),
            per_second: None,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            max_us: us(h.max()),
            ratio: None,
            note: None,
        }
    }

    pub fn per_second(mut self, v: f64) -> Row {
        self.per_second = Some(v);
        self
    }

    pub fn ratio(mut self, v: f64) -> Row {
        self.ratio = Some(v);
        self
    }

    pub fn note(mut self, v: impl Into<String>) -> Row {
        self.note = Some(v.into());
        self
    }
}

/// A whole benchmark's output.
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: String,
    pub date: String,
    pub machine: String,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn new(benchmark: &str) -> Report {
        Report {
            benchmark: benchmark.into(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: machine(),
            rows: Vec::new(),
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string_pretty(self).unwrap_or_default());
            return;
        }
        println!("wasmfc bench {} — {} — {}", self.benchmark, self.date, self.machine);
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["what", "n", "per s", "p50", "p90", "p99", "max", "ratio", "note"]);
        for r in &self.rows {
            table.add_row([
                r.name.clone(),
                r.count.to_string(),
                r.per_second.map(|v| format!("{v:.0}")).unwrap_or_default(),
                duration(r.p50_us),
                duration(r.p90_us),
                duration(r.p99_us),
                duration(r.max_us),
                r.ratio.map(|v| format!("{v:.2}x")).unwrap_or_default(),
                r.note.clone().unwrap_or_default(),
            ]);
        }
        println!("{table}");
    }
}

fn duration(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// CPU model and core count, for the record.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cores} cores, {model}")
}
