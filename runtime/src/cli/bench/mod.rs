//! `wasmfc bench`: the benchmarks behind `docs/benchmarks.md`.
//!
//! Every benchmark measures side by side in one run and reports ratios,
//! because the machines we run on are noisy: absolute numbers move from run
//! to run, ratios much less.
//! - `invoke`: in-process invocation latency (engine only, no HTTP);
//! - `http`: sync InvokeFunction over HTTP beside a plain axum hello world;
//! - `tasks`: task mode — accepted/s, completed/s, Stop latency;
//! - `cluster`: nodes sharing one PostgreSQL — scale-out, the store's cost,
//!   Stop across nodes, lease-expiry recovery;
//! - `starts`: cold / warm / provisioned / fresh-upload starts;
//! - `wasi-http`: a wasi:http component behind an HTTP trigger beside the
//!   same component under `wasmtime serve`;
//! - `orchestrations`: fan-out throughput beside plain tasks, and many
//!   waiting orchestrations (memory, raise-event round trips);
//! - `neighbours`: a short request's latency beside CPU-bound guests;
//! - `console`: the web console's task list over a million tasks, and its
//!   live feed while they run.

mod child;
mod cluster;
mod console;
mod http;
mod invoke;
mod load;
mod neighbours;
mod orchestrations;
mod report;
mod starts;
mod tasks;
mod wasi_http;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Run a benchmark and print its table (or JSON).
#[derive(Debug, Args)]
pub struct BenchCommand {
    #[command(subcommand)]
    pub which: Benchmark,
}

#[derive(Debug, Subcommand)]
pub enum Benchmark {
    /// In-process invoke latency: new instance, instantiation alone, warm
    /// instance.
    Invoke(invoke::InvokeArgs),
    /// Sync InvokeFunction over HTTP beside a plain axum route.
    Http(http::HttpArgs),
    /// Task mode: accepted tasks/s, completed no-op tasks/s, Stop latency.
    Tasks(tasks::TasksArgs),
    /// Nodes on one PostgreSQL: scale-out on sleeping tasks, SQLite beside
    /// PostgreSQL on no-op tasks, Stop across nodes, lease-expiry recovery.
    Cluster(cluster::ClusterArgs),
    /// Cold, warm, provisioned and fresh-upload starts over HTTP, beside a
    /// plain axum route; memory of provisioned instances; an SVG chart.
    Starts(starts::StartsArgs),
    /// The same wasi:http component served by wasmfc (HTTP trigger) and by
    /// `wasmtime serve`, under one load generator.
    WasiHttp(wasi_http::WasiHttpArgs),
    /// Orchestrations: fan-out activity throughput beside plain tasks;
    /// memory and raise-event latency with many waiting instances.
    Orchestrations(orchestrations::OrchestrationsArgs),
    /// `hello` latency beside CPU-bound `spin` guests, with CPU-bound guests
    /// moved to the guest threads and with every guest on its serving thread.
    Neighbours(neighbours::NeighboursArgs),
    /// The console's task list with a million tasks in the store (first
    /// pages beside the FC API's list), and its live feed while they run.
    Console(console::ConsoleArgs),
    /// The axum hello-world the `http` benchmark compares against.
    #[command(hide = true)]
    BaselineServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

/// Flags every benchmark shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Where the example guests were built (`bash scripts/build-guests.sh`).
    #[arg(long, default_value = "target/guest-examples")]
    pub guests: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl CommonArgs {
    /// The path of an example guest's `.wasm`.
    pub fn guest(&self, name: &str) -> PathBuf {
        // The Python and JavaScript examples (scripts/build-script-guests.sh).
        if matches!(name, "hello-py" | "hello-js") {
            return self
                .guests
                .join("script")
                .join(format!("{}.wasm", name.replace('-', "_")));
        }
        let target = if name == "echo-wasi" {
            "wasm32-wasip1"
        } else {
            "wasm32-wasip2"
        };
        // Cargo names a cdylib's file with underscores, a binary's as is.
        let file = if target == "wasm32-wasip2" {
            name.replace('-', "_")
        } else {
            name.to_string()
        };
        self.guests.join(target).join("release").join(format!("{file}.wasm"))
    }
}

impl BenchCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.which {
            Benchmark::Invoke(args) => invoke::run(args).await,
            Benchmark::Http(args) => http::run(args).await,
            Benchmark::Tasks(args) => tasks::run(args).await,
            Benchmark::Cluster(args) => cluster::run(args).await,
            Benchmark::Starts(args) => starts::run(args).await,
            Benchmark::WasiHttp(args) => wasi_http::run(args).await,
            Benchmark::Orchestrations(args) => orchestrations::run(args).await,
            Benchmark::Neighbours(args) => neighbours::run(args).await,
            Benchmark::Console(args) => console::run(args).await,
            Benchmark::BaselineServer { listen } => child::run_baseline(listen).await,
        }
    }
}
