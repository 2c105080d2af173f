//! `wasmfc serve`: the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::api::auth::Credentials;
use crate::api::{AppState, Limits, SharedState};
use crate::cluster::{Cluster, NodeConfig, NodeReport};
use crate::engine::{Engine, EngineConfig};
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolConfig};
use crate::registry::{CodeDir, Registry};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::{Durability, PgStore, SqliteStore, Store, postgres};

/// Run the wasmfc server: the FC 2.0 API on the embedded store.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeCommand {
    /// Address to listen on. Without credentials only loopback addresses
    /// are allowed (see --insecure-listen-any).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Serve `/metrics` on this address instead, unsigned (for a Prometheus
    /// scraper; keep it on loopback or an internal network). Without it,
    /// `/metrics` is on the API's address and, with --credentials, needs a
    /// signature like every other route.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,

    /// PEM certificate chain to serve TLS with (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Seconds a client may take to send a request head; a keep-alive
    /// connection idle this long is closed too.
    #[arg(long, default_value_t = 30)]
    pub header_read_timeout_secs: u64,

    /// Seconds a request body may go without any data before the request
    /// fails with 408.
    #[arg(long, default_value_t = 30)]
    pub body_idle_timeout_secs: u64,

    /// Seconds a request body may take in all once it waits for data
    /// (a code upload over a slow link needs the most).
    #[arg(long, default_value_t = 300)]
    pub body_read_timeout_secs: u64,

    /// Connections one client address may hold open at once.
    #[arg(long, default_value_t = 512)]
    pub max_connections_per_ip: usize,

    /// Directory holding the database, uploaded code and compiled-code cache.
    #[arg(long, default_value = "./wasmfc-data")]
    pub data_dir: PathBuf,

    /// The store: `sqlite` (the embedded database in --data-dir) or a
    /// `postgres://user@host:port/database` URL, a database that several
    /// wasmfc nodes may share (its schema is created or migrated on start).
    #[arg(long, env = "WASMFC_STORE", default_value = "sqlite", value_parser = parse_store)]
    pub store: String,

    /// This node's name among the nodes sharing a PostgreSQL store
    /// (default: a fresh one per start).
    #[arg(long, env = "WASMFC_NODE_ID")]
    pub node_id: Option<String>,

    /// Seconds a node's task and instance leases last without renewal
    /// (renewed every quarter): after a node dies, its running tasks are
    /// taken over by another within about this long.
    #[arg(long, default_value_t = 10)]
    pub lease_secs: u64,

    /// JSON file mapping access key id -> secret. When given, every request
    /// must be signed as the FC SDKs sign them.
    #[arg(long)]
    pub credentials: Option<PathBuf>,

    /// Allow listening on a non-loopback address without credentials.
    #[arg(long)]
    pub insecure_listen_any: bool,

    /// Accept signed requests whose signature does not cover their body
    /// (the FC scheme without Content-MD5) on a non-loopback address. Only
    /// behind TLS, where a request cannot be captured and replayed with
    /// another body.
    #[arg(long)]
    pub allow_unsigned_bodies: bool,

    /// The URL clients reach this server at (`scheme://host[:port]`), used
    /// for the URLs the server hands out: GetFunctionCode's download URL and
    /// the Durable management URLs. Default: the listen address. Never
    /// taken from a request's Host header, which any client can set.
    #[arg(long, value_parser = parse_public_url)]
    pub public_url: Option<String>,

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

    /// Meter fuel (wasm instructions, roughly) in every guest: functions
    /// may then set a `fuelBudget`, and event-function invocations report the fuel
    /// they consumed (`X-Wasmfc-Fuel-Consumed`, the task record,
    /// `wasmfc_fuel_consumed_total`). Costs up to 2x on tight loops.
    #[arg(long)]
    pub fuel_metering: bool,

    /// MB of task logs kept in all: past it the oldest tasks' logs are
    /// dropped first (their results and history stay).
    #[arg(long, default_value_t = 1024)]
    pub task_log_budget_mb: u64,

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

    /// Keep every guest on the thread it started on. By default a guest
    /// still running after one epoch tick moves to the guest threads (one
    /// per core, at a lower priority), so CPU-bound guests do not delay the
    /// requests a serving thread has yet to read.
    #[arg(long)]
    pub no_guest_offload: bool,

    /// Hours a finished task stays readable before it is purged.
    #[arg(long, default_value_t = 72)]
    pub task_retention_hours: u64,
}

impl ServeCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        self.check_exposure()?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::api::tls::acceptor(cert, key)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("binding {}", self.listen))?;
        let addr = listener.local_addr()?;
        let state = self.build_state(addr).await?;
        if let Some(metrics_addr) = self.metrics_listen {
            let metrics = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("binding --metrics-listen {metrics_addr}"))?;
            // Printed before the listening line, which scripts wait for.
            println!("wasmfc metrics on http://{}/metrics", metrics.local_addr()?);
            let router = crate::api::metrics_router(state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(metrics, router).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        }
        // Scripts and tests read this line to learn the port.
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        println!("wasmfc listening on {scheme}://{addr}");
        tracing::info!(%addr, data_dir = %self.data_dir.display(), auth = state.credentials.is_some(), "serving");
        let threads = self
            .http_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let placement = crate::api::listener::Placement {
            threads,
            pin: !self.no_http_pinning,
            batch_writes: !self.no_write_batching,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            body_timeouts: crate::api::timed_body::BodyTimeouts {
                idle: Duration::from_secs(self.body_idle_timeout_secs.max(1)),
                total: Duration::from_secs(self.body_read_timeout_secs.max(1)),
            },
            max_connections_per_ip: self.max_connections_per_ip,
            tls,
        };
        let cluster = state.cluster.clone();
        crate::api::listener::serve(listener, crate::api::service(state), placement, shutdown_signal()).await?;
        cluster.leave().await;
        tracing::info!("shut down");
        Ok(())
    }

    /// Refuses a non-loopback listen address without credentials.
    fn check_exposure(&self) -> anyhow::Result<()> {
        if self.credentials.is_none() && !self.listen.ip().is_loopback() && !self.insecure_listen_any {
            anyhow::bail!(
                "refusing to listen on {} without --credentials: anyone who can reach it could run code. \
                 Configure credentials, listen on loopback, or pass --insecure-listen-any",
                self.listen
            );
        }
        Ok(())
    }

    /// Opens the store and starts the engine, pool, scheduler and
    /// autoscaler: everything the API needs, without a listener (so
    /// benchmarks can drive the router in-process). `bound` is the address
    /// the server listens on, the default of `--public-url`.
    pub async fn build_state(&self, bound: SocketAddr) -> anyhow::Result<SharedState> {
        self.check_exposure()?;
        crate::engine::offload::set_enabled(!self.no_guest_offload);
        if !self.no_guest_offload {
            crate::engine::offload::start();
        }
        let credentials = self.credentials.as_deref().map(Credentials::load).transpose()?;
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        let public_url = self.public_url.clone().unwrap_or_else(|| format!("{scheme}://{bound}"));

        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data dir {}", self.data_dir.display()))?;
        let store = self.open_store().await?;
        store.set_log_budget(self.task_log_budget_mb << 20);
        let cluster = self.join_cluster(&store, &public_url).await?;
        let engine = Engine::new(EngineConfig {
            cache_dir: self.data_dir.join("cache"),
            max_instances: self.max_instances,
            log_limit: self.log_limit_bytes,
            fuel_metering: self.fuel_metering,
            ..EngineConfig::default()
        })?;
        let code = CodeDir::new(self.data_dir.join("code"))?;
        let registry = Registry::load(store.clone(), code.clone(), engine.clone(), self.max_code_size_mb << 20)
            .await
            .context("loading the registry")?;
        let metrics = Arc::new(Metrics::for_node(Some(cluster.node_id())));
        let pool = Pool::new(
            engine.clone(),
            code,
            metrics.clone(),
            PoolConfig {
                max_instances: self.max_instances as usize,
                max_instances_per_function: self.max_instances_per_function,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
                ..PoolConfig::default()
            },
        );
        // Reserved concurrency is in force before the first task runs.
        super::wiring::set_reserved_concurrency(&registry, &pool);
        let defaults = SchedulerConfig::default();
        let concurrency = self.task_concurrency.unwrap_or(defaults.concurrency).max(1);
        let scheduler = Scheduler::start(
            store.clone(),
            registry.clone(),
            pool.clone(),
            cluster.clone(),
            SchedulerConfig {
                concurrency,
                per_function: self.task_concurrency_per_function.unwrap_or(concurrency).max(1),
                retry_base: Duration::from_millis(self.retry_base_delay_ms),
                retention: Duration::from_secs(self.task_retention_hours * 3600),
                ..defaults
            },
        )
        .await
        .context("starting the scheduler")?;
        super::wiring::follow_registry(&registry, pool.clone(), scheduler.clone());
        registry.follow(&cluster);
        let durable = crate::durable::Durable::start(
            store.clone(),
            registry.clone(),
            engine.clone(),
            registry.code_dir().clone(),
            scheduler.clone(),
            cluster.clone(),
            concurrency.max(8),
        )
        .await
        .context("starting the orchestration engine")?;
        let autoscaler = crate::provision::Autoscaler::start(
            registry.clone(),
            pool.clone(),
            cluster.clone(),
            Duration::from_secs(self.provision_eval_period_secs.max(1)),
        );
        let url_secret = store
            .meta_get_or_insert("download_url_secret", || uuid::Uuid::new_v4().simple().to_string())
            .await?;
        let counted = (scheduler.clone(), pool.clone(), autoscaler.clone());
        cluster.set_counts(Box::new(move || NodeReport {
            tasks_running: counted.0.in_flight() as i64,
            instances: counted.1.live_count() as i64,
            provisioned: counted.2.provisioned_here(),
        }));
        let state = Arc::new(AppState {
            cluster,
            registry,
            pool,
            scheduler,
            durable,
            autoscaler,
            engine,
            metrics,
            credentials,
            limits: Limits::for_code_size(self.max_code_size_mb << 20),
            url_secret,
            public_url,
            require_signed_bodies: !self.listen.ip().is_loopback() && !self.allow_unsigned_bodies,
            metrics_apart: self.metrics_listen.is_some(),
            console: Default::default(),
        });
        Ok(state)
    }
}

impl ServeCommand {
    /// Opens the embedded store in the data dir, or the shared one at the
    /// `--store` URL.
    async fn open_store(&self) -> anyhow::Result<Store> {
        if postgres::is_postgres_url(&self.store) {
            let pg = PgStore::open(&self.store)
                .await
                .context("opening the PostgreSQL store (--store)")?;
            return Ok(Store::Postgres(pg));
        }
        let path = self.data_dir.join("wasmfc.db");
        Ok(Store::Sqlite(
            SqliteStore::open(&path, self.durability).context("opening the store")?,
        ))
    }
}

impl ServeCommand {
    /// This node, alone on the embedded store or among the nodes of a
    /// shared one.
    async fn join_cluster(&self, store: &Store, public_url: &str) -> anyhow::Result<Cluster> {
        let config = NodeConfig {
            node_id: self
                .node_id
                .clone()
                .unwrap_or_else(|| format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
            address: public_url.to_string(),
            lease: Duration::from_secs(self.lease_secs.max(1)),
        };
        Ok(match store.shared() {
            Some(pg) => {
                let cluster = Cluster::join(config, pg.clone()).await.context("joining the cluster")?;
                tracing::info!(node = cluster.node_id(), "joined the nodes sharing the store");
                cluster
            }
            None => Cluster::single(config),
        })
    }
}

/// `--store`: `sqlite`, or a PostgreSQL URL.
fn parse_store(text: &str) -> Result<String, String> {
    if text == "sqlite" || postgres::is_postgres_url(text) {
        Ok(text.to_string())
    } else {
        Err("expected `sqlite` or a postgres://user@host:port/database URL".into())
    }
}

/// `--public-url`: an absolute http(s) URL with a host and nothing after
/// it; kept without a trailing slash.
fn parse_public_url(text: &str) -> Result<String, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
        return Err("expected http://host[:port] or https://host[:port]".into());
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("the public URL is scheme, host and port only, without a path or query".into());
    }
    Ok(text.trim_end_matches('/').to_string())
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
