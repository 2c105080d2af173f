//! `wasmfc serve`: the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::api::auth::Credentials;
use crate::api::{AppState, Limits, SharedState};
use crate::engine::{Engine, EngineConfig};
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolConfig};
use crate::registry::{CodeDir, Registry};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::{Durability, Store};

/// Run the wasmfc server: the FC 2.0 API on the embedded store.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeCommand {
    /// Address to listen on. Without credentials only loopback addresses
    /// are allowed (see --insecure-listen-any).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Directory holding the database, uploaded code and compiled-code cache.
    #[arg(long, default_value = "./wasmfc-data")]
    pub data_dir: PathBuf,

    /// JSON file mapping access key id -> secret. When given, every request
    /// must be signed as the FC SDKs sign them.
    #[arg(long)]
    pub credentials: Option<PathBuf>,

    /// Allow listening on a non-loopback address without credentials.
    #[arg(long)]
    pub insecure_listen_any: bool,

    /// Instances alive at once across all functions (sizes the pooling
    /// allocator's address-space reservation: ~8 GiB of virtual memory each).
    #[arg(long, default_value_t = 1000)]
    pub max_instances: u32,

    /// Instances alive at once per function version.
    #[arg(long, default_value_t = 1000)]
    pub max_instances_per_function: usize,

    /// Seconds an idle instance is kept before it is reclaimed.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout_secs: u64,

    /// Milliseconds an invocation waits for an instance before it is
    /// throttled (HTTP 429).
    #[arg(long, default_value_t = 2000)]
    pub acquire_timeout_ms: u64,

    /// How hard commits push to disk: `process` survives kill -9, `fsync`
    /// also survives power loss.
    #[arg(long, value_enum, default_value_t = Durability::Process)]
    pub durability: Durability,

    /// Largest code package accepted, in MB.
    #[arg(long, default_value_t = 64)]
    pub max_code_size_mb: u64,

    /// Log bytes kept per invocation (older output is dropped first).
    #[arg(long, default_value_t = 1 << 20)]
    pub log_limit_bytes: usize,

    /// Async tasks in flight at once (default: 4 x cores).
    #[arg(long)]
    pub task_concurrency: Option<usize>,

    /// Async tasks in flight at once per function (default: the global limit).
    #[arg(long)]
    pub task_concurrency_per_function: Option<usize>,

    /// Delay before a failed task's first retry, in ms; doubles per retry,
    /// with jitter.
    #[arg(long, default_value_t = 1000)]
    pub retry_base_delay_ms: u64,

    /// Seconds between target-tracking evaluations of provision configs
    /// (FC: 60).
    #[arg(long, default_value_t = 60)]
    pub provision_eval_period_secs: u64,

    /// Threads serving HTTP connections, each a single-threaded runtime
    /// (default: one per core).
    #[arg(long)]
    pub http_threads: Option<usize>,

    /// Do not pin the serving threads to cores. Pinned (the default when
    /// there are no more threads than cores), each connection is served on
    /// the core its packets arrive on, which spares a request the wake-up of
    /// another core; unpinned, the kernel places the threads.
    #[arg(long)]
    pub no_http_pinning: bool,

    /// Write each answer as soon as it is ready. By default a serving
    /// thread holds the answers of the connections it is serving until it
    /// has run every ready one, and sends them together: a client on the
    /// same host then wakes once per burst instead of once per answer.
    #[arg(long)]
    pub no_write_batching: bool,

    /// Hours a finished task stays readable before it is purged.
    #[arg(long, default_value_t = 72)]
    pub task_retention_hours: u64,
}

impl ServeCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let state = self.build_state().await?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("binding {}", self.listen))?;
        let addr = listener.local_addr()?;
        // Scripts and tests read this line to learn the port.
        println!("wasmfc listening on http://{addr}");
        tracing::info!(%addr, data_dir = %self.data_dir.display(), auth = state.credentials.is_some(), "serving");
        // No Nagle: a streamed (chunked) response ends with a small final
        // write that would otherwise wait for the client's delayed ACK
        // (~40 ms) — that was the p99 of HTTP-trigger responses. The
        // listener sets it on every accepted connection.
        let threads = self
            .http_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let placement = crate::api::listener::Placement {
            threads,
            pin: !self.no_http_pinning,
            batch_writes: !self.no_write_batching,
        };
        crate::api::listener::serve(listener, crate::api::service(state), placement, shutdown_signal()).await?;
        tracing::info!("shut down");
        Ok(())
    }

    /// Opens the store and starts the engine, pool, scheduler and
    /// autoscaler: everything the API needs, without a listener (so
    /// benchmarks can drive the router in-process).
    pub async fn build_state(&self) -> anyhow::Result<SharedState> {
        let credentials = self.credentials.as_deref().map(Credentials::load).transpose()?;
        if credentials.is_none() && !self.listen.ip().is_loopback() && !self.insecure_listen_any {
            anyhow::bail!(
                "refusing to listen on {} without --credentials: anyone who can reach it could run code. \
                 Configure credentials, listen on loopback, or pass --insecure-listen-any",
                self.listen
            );
        }

        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data dir {}", self.data_dir.display()))?;
        let store = Store::open(&self.data_dir.join("wasmfc.db"), self.durability).context("opening the store")?;
        let engine = Engine::new(EngineConfig {
            cache_dir: self.data_dir.join("cache"),
            max_instances: self.max_instances,
            log_limit: self.log_limit_bytes,
            ..EngineConfig::default()
        })?;
        let code = CodeDir::new(self.data_dir.join("code"))?;
        let registry = Registry::load(store.clone(), code.clone(), engine.clone(), self.max_code_size_mb << 20)
            .context("loading the registry")?;
        let pool = Pool::new(
            engine.clone(),
            code,
            PoolConfig {
                max_instances: self.max_instances as usize,
                max_instances_per_function: self.max_instances_per_function,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
                ..PoolConfig::default()
            },
        );
        let defaults = SchedulerConfig::default();
        let concurrency = self.task_concurrency.unwrap_or(defaults.concurrency).max(1);
        let scheduler = Scheduler::start(
            store.clone(),
            registry.clone(),
            pool.clone(),
            SchedulerConfig {
                concurrency,
                per_function: self.task_concurrency_per_function.unwrap_or(concurrency).max(1),
                retry_base: Duration::from_millis(self.retry_base_delay_ms),
                retention: Duration::from_secs(self.task_retention_hours * 3600),
                ..defaults
            },
        )
        .context("starting the scheduler")?;
        let durable = crate::durable::Durable::start(
            store.clone(),
            registry.clone(),
            engine.clone(),
            registry.code_dir().clone(),
            scheduler.clone(),
            concurrency.max(8),
        )
        .context("starting the orchestration engine")?;
        let autoscaler = crate::provision::Autoscaler::start(
            registry.clone(),
            pool.clone(),
            Duration::from_secs(self.provision_eval_period_secs.max(1)),
        );
        let metrics = Arc::new(Metrics::new(
            engine.clone(),
            pool.clone(),
            scheduler.clone(),
            durable.clone(),
        ));
        let url_secret = store
            .meta_get_or_insert("download_url_secret", || uuid::Uuid::new_v4().simple().to_string())
            .await?;
        let state = Arc::new(AppState {
            registry,
            pool,
            scheduler,
            durable,
            autoscaler,
            engine,
            metrics,
            credentials,
            limits: Limits::default(),
            url_secret,
        });
        Ok(state)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
