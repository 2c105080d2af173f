//! The wasm engine: one wasmtime `Engine` per process, compiled-code cache,
//! instances with limits, and the calls into guests.
//!
//! Knows nothing about HTTP, services or tasks: it is handed wasm bytes to
//! compile, and an [`InvocationContext`] plus event bytes to run.
//!
//! Choices, and why:
//! - **Pooling allocator** with copy-on-write images, and `keep_resident` +
//!   `pagemap_scan` where the kernel has it: a fresh instance then costs a
//!   few microseconds, so per-invocation isolation is nearly free
//!   (measurements in the shared WASMTIME48 notes and `docs/benchmarks.md`).
//! - **Epoch interruption** with one ticker thread per engine (1 ms), never a
//!   timer per request (wasmtime#11814). The per-store callback checks the
//!   stop flag and the deadline and yields to tokio each tick.
//! - **Async calls** (`instantiate_async`/`call_async`) so guests run on the
//!   tokio threads, yield cooperatively, and can be cancelled while parked in
//!   a host call by dropping their future.
//! - **Compiled artifacts on disk**, keyed by the wasm's SHA-256 and the
//!   engine's compatibility hash, loaded by mmap: a restart does not
//!   recompile.

mod artifacts;
mod call;
mod capture;
mod guest;
mod http;
mod instance;
mod interrupt;
mod invocation;
mod limits;
pub mod offload;
mod orchestrator;
pub mod outbound;
mod sandbox;

pub use capture::{Capture, Captured};
pub use guest::GuestInstance;
pub use http::{HttpBodyError, HttpInstance, RecordedRequest, collect_response};
pub use interrupt::StopHandle;
pub use invocation::{Invocation, InvocationContext, InvokeError, Target};
pub use orchestrator::{ActivityCall, Interrupt, Journal, RetryPolicy, RunEnd, RunOutcome, RunSettings};
pub use sandbox::{InstanceSettings, MAX_HOSTCALL_BYTES, MAX_TABLE_ENTRIES};
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::OnceCell;
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

use artifacts::ArtifactCache;
use instance::{CommandState, ComponentState};

/// What kind of guest a piece of wasm is; decided on upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestKind {
    /// A component exporting `wasmfc:function/handler`.
    EventComponent,
    /// A WASI preview-1 command: event on stdin, result on stdout.
    Command,
    /// A `wasi:http/proxy` component: an HTTP function.
    HttpComponent,
    /// A component exporting `wasmfc:function/orchestrator`: run through
    /// the orchestration API, never invoked directly.
    Orchestrator,
}

impl GuestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::EventComponent => "event-component",
            GuestKind::Command => "command",
            GuestKind::HttpComponent => "http-component",
            GuestKind::Orchestrator => "orchestrator",
        }
    }

    /// Whether an instance of this kind can serve more than one invocation.
    /// A command's `_start` runs once per instance, so commands never are.
    pub fn reusable(self) -> bool {
        matches!(self, GuestKind::EventComponent)
    }
}

/// Errors at the engine boundary (compiling and loading code).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bytes are not wasm we can run; the message is the compiler's or
    /// the linker's, meant for the uploader.
    #[error("{0}")]
    InvalidCode(String),
    #[error("engine configuration failed: {0}")]
    Config(String),
    #[error("compiled-code cache I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Engine settings (from `wasmfc serve` flags).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled artifacts are cached.
    pub cache_dir: PathBuf,
    /// Instances that may be alive at once (sizes the pooling allocator).
    pub max_instances: u32,
    /// Log bytes kept per invocation.
    pub log_limit: usize,
    /// Largest command result (stdout) accepted.
    pub result_limit: usize,
    /// Epoch tick: the granularity of deadlines and Stop.
    pub epoch_tick: Duration,
    /// Meter fuel in every guest (`--fuel-metering`): needed for functions
    /// with a `fuelBudget`, and reports each invocation's consumption. Costs
    /// 1.0–2.0× on tight loops, so off by default.
    pub fuel_metering: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: PathBuf::from("cache"),
            max_instances: 1000,
            log_limit: 1 << 20,
            result_limit: 6 << 20,
            epoch_tick: Duration::from_millis(1),
            fuel_metering: false,
        }
    }
}

/// Compiled and linked code, ready to instantiate.
pub struct Prepared {
    pub kind: GuestKind,
    pub wasm_sha256: String,
    target: guest::PreparedTarget,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("kind", &self.kind)
            .field("wasm_sha256", &self.wasm_sha256)
            .finish()
    }
}

impl Prepared {
    /// True when the guest exports an initializer hook.
    pub fn has_initializer(&self) -> bool {
        self.target.has_initializer()
    }

    /// The linked orchestrator, if this code is one.
    fn orchestrator(&self) -> Option<&orchestrator::OrchestratorPre> {
        match &self.target {
            guest::PreparedTarget::Orchestrator(pre) => Some(pre),
            _ => None,
        }
    }
}

/// Counters the metrics endpoint reports.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Code compiled from wasm (a cache miss).
    pub compilations: AtomicU64,
    /// Compiled artifacts loaded from the disk cache.
    pub artifact_loads: AtomicU64,
    /// Lookups answered by the in-memory cache.
    pub memory_hits: AtomicU64,
}

/// The process-wide engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    module_linker: wasmtime::Linker<CommandState>,
    component_linker: wasmtime::component::Linker<ComponentState>,
    http_linker: wasmtime::component::Linker<http::HttpState>,
    orchestrator_linker: wasmtime::component::Linker<orchestrator::OrchestratorState>,
    artifacts: ArtifactCache,
    prepared: DashMap<String, Arc<OnceCell<Arc<Prepared>>>>,
    config: EngineConfig,
    stats: EngineStats,
    ticker_stop: Arc<AtomicBool>,
    pagemap_scan: bool,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        let mut wt = Config::new();
        wt.epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(1 << 20)
            .async_stack_size(2 << 20)
            .consume_fuel(config.fuel_metering);
        // `WASMFC_PERFMAP=1` writes /tmp/perf-<pid>.map so that `perf`
        // names the guests' compiled functions (as `wasmtime serve
        // --profile=perfmap` does); off by default, it costs a write per
        // loaded module.
        if std::env::var_os("WASMFC_PERFMAP").is_some() {
            wt.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }

        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            // A Rust component holds 3-4 core instances (its module, the
            // canonical-ABI shims) and a couple of tables.
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(4 << 30);
        let pagemap_scan = PoolingAllocationConfig::is_pagemap_scan_available();
        if pagemap_scan {
            // Reset memories by scanning for dirty pages instead of unmapping:
            // ~3x cheaper fresh instances (see module docs).
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(2 << 20)
                .table_keep_resident(64 << 10);
        }
        wt.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        let wasmtime = wasmtime::Engine::new(&wt).map_err(|e| EngineError::Config(format!("{e:#}")))?;

        let mut module_linker = wasmtime::Linker::new(&wasmtime);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |s: &mut CommandState| &mut s.wasi)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let mut component_linker = wasmtime::component::Linker::new(&wasmtime);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let mut http_linker = wasmtime::component::Linker::new(&wasmtime);
        wasmtime_wasi::p2::add_to_linker_async(&mut http_linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut http_linker)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;

        let mut orchestrator_linker = wasmtime::component::Linker::new(&wasmtime);
        orchestrator::add_to_linker(&mut orchestrator_linker)?;

        std::fs::create_dir_all(&config.cache_dir)?;
        let artifacts = ArtifactCache::new(&wasmtime, config.cache_dir.clone());

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(wasmtime.clone(), config.epoch_tick, ticker_stop.clone())?;

        tracing::info!(
            max_instances = n,
            pagemap_scan,
            "wasm engine ready (pooling allocator, epoch tick {:?})",
            config.epoch_tick
        );
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                module_linker,
                component_linker,
                http_linker,
                orchestrator_linker,
                artifacts,
                prepared: DashMap::new(),
                config,
                stats: EngineStats::default(),
                ticker_stop,
                pagemap_scan,
            }),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    pub fn pagemap_scan(&self) -> bool {
        self.inner.pagemap_scan
    }

    /// Compiles, links and classifies uploaded wasm, and stores the compiled
    /// artifact in the disk cache. The error message is for the uploader.
    ///
    /// CPU-heavy (tens of milliseconds): runs on a blocking thread.
    pub async fn validate(&self, wasm_sha256: String, wasm: bytes::Bytes) -> Result<Arc<Prepared>, EngineError> {
        let this = self.clone();
        let sha = wasm_sha256.clone();
        let prepared = tokio::task::spawn_blocking(move || this.compile_and_prepare(&sha, || Ok(wasm.to_vec())))
            .await
            .map_err(|e| EngineError::Config(format!("compile task failed: {e}")))??;
        let prepared = Arc::new(prepared);
        let cell = self
            .inner
            .prepared
            .entry(wasm_sha256)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let _ = cell.set(prepared.clone());
        Ok(prepared)
    }

    /// The prepared code for `wasm_sha256`: from memory, else from the disk
    /// cache, else compiled from the wasm `load` returns.
    pub async fn prepared<F>(&self, wasm_sha256: &str, load: F) -> Result<Arc<Prepared>, EngineError>
    where
        F: FnOnce() -> std::io::Result<Vec<u8>> + Send + 'static,
    {
        let cell = self
            .inner
            .prepared
            .entry(wasm_sha256.to_string())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        if let Some(p) = cell.get() {
            self.inner.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(p.clone());
        }
        let this = self.clone();
        let sha = wasm_sha256.to_string();
        cell.get_or_try_init(|| async move {
            if let Some(p) = this.load_cached_in_place(&sha) {
                return p.map(Arc::new);
            }
            let p = tokio::task::spawn_blocking(move || this.compile_and_prepare(&sha, load))
                .await
                .map_err(|e| EngineError::Config(format!("compile task failed: {e}")))??;
            Ok(Arc::new(p))
        })
        .await
        .cloned()
    }

    /// Loads and links a cached artifact on this thread. Loading takes a
    /// few hundred microseconds (mmap, deserialize, link); sending it to the
    /// blocking pool would add two thread hand-offs to every cold start.
    /// On a multi-thread runtime `block_in_place` first hands this worker's
    /// other tasks to another thread; on a current-thread runtime (an HTTP
    /// serving thread) the load simply runs, as the guest it is loaded for
    /// will. `None`: not in the cache, or no runtime — compile (or load) on
    /// the blocking pool instead.
    fn load_cached_in_place(&self, wasm_sha256: &str) -> Option<Result<Prepared, EngineError>> {
        let load = || {
            let compiled = self.inner.artifacts.load(wasm_sha256)?;
            Some(self.link(wasm_sha256, compiled, artifacts::CacheOutcome::Loaded))
        };
        match tokio::runtime::Handle::try_current().ok()?.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(load),
            tokio::runtime::RuntimeFlavor::CurrentThread => load(),
            _ => None,
        }
    }

    /// Forgets in-memory prepared code no function refers to any more.
    /// Dropping compiled code unmaps it and unregisters it from the engine
    /// (tens of microseconds), so the drop happens on the blocking pool,
    /// not on the caller's path.
    pub fn forget(&self, wasm_sha256: &str) {
        if let Some(removed) = self.inner.prepared.remove(wasm_sha256) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(removed))),
                Err(_) => drop(removed),
            }
        }
    }

    /// Forgets in-memory prepared code and drops it on this thread, for
    /// callers already off a request's path.
    pub fn unload(&self, wasm_sha256: &str) {
        drop(self.inner.prepared.remove(wasm_sha256));
    }

    fn compile_and_prepare<F>(&self, wasm_sha256: &str, load: F) -> Result<Prepared, EngineError>
    where
        F: FnOnce() -> std::io::Result<Vec<u8>>,
    {
        let (compiled, outcome) = self.inner.artifacts.load_or_compile(wasm_sha256, load)?;
        self.link(wasm_sha256, compiled, outcome)
    }

    /// Links compiled code and classifies it (event, HTTP, command or
    /// orchestrator).
    fn link(
        &self,
        wasm_sha256: &str,
        compiled: artifacts::Compiled,
        outcome: artifacts::CacheOutcome,
    ) -> Result<Prepared, EngineError> {
        let inner = &self.inner;
        match outcome {
            artifacts::CacheOutcome::Compiled => {
                inner.stats.compilations.fetch_add(1, Ordering::Relaxed);
                tracing::info!(wasm_sha256, "compiled wasm and cached the artifact");
            }
            artifacts::CacheOutcome::Loaded => {
                inner.stats.artifact_loads.fetch_add(1, Ordering::Relaxed);
                // Debug, not info: every cold start after a scale to zero
                // or a restart takes this path.
                tracing::debug!(
                    wasm_sha256,
                    "loaded compiled artifact from the disk cache (no recompilation)"
                );
            }
        }
        let (kind, target) = guest::link(
            &inner.module_linker,
            &inner.component_linker,
            &inner.http_linker,
            &inner.orchestrator_linker,
            compiled,
        )?;
        Ok(Prepared {
            kind,
            wasm_sha256: wasm_sha256.to_string(),
            target,
        })
    }

    /// Creates an instance of `prepared` (the initializer, if configured,
    /// runs here). For commands this only records the recipe: each
    /// invocation instantiates afresh.
    pub async fn instantiate(
        &self,
        prepared: Arc<Prepared>,
        settings: Arc<InstanceSettings>,
        init_ctx: Option<&InvocationContext>,
    ) -> Result<GuestInstance, InvokeError> {
        GuestInstance::create(self, prepared, settings, init_ctx).await
    }

    fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }
}

/// Ticks without guest activity (~100 ms) after which the ticker slows
/// down, and how many ticks it then sleeps at a time (10 ms with the
/// default tick, Spin's own tick). Slowing down only after a quiet spell
/// keeps steady traffic and Stop on time: only a guest starting after
/// 100 ms of quiet may get its first tick (deadline check, Stop, yield) up
/// to 10 ms late; every later one is on time.
const QUIET_TICKS: u32 = 100;
const IDLE_TICKS: u32 = 10;

fn spawn_epoch_ticker(engine: wasmtime::Engine, tick: Duration, stop: Arc<AtomicBool>) -> Result<(), EngineError> {
    std::thread::Builder::new()
        .name("wasmfc-epoch".into())
        .spawn(move || {
            let mut quiet = 0u32;
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(if quiet >= QUIET_TICKS { tick * IDLE_TICKS } else { tick });
                let (started, running) = interrupt::guest_calls();
                if running || started != seen {
                    seen = started;
                    quiet = 0;
                    engine.increment_epoch();
                } else {
                    quiet = quiet.saturating_add(1);
                }
            }
        })
        .map(|_| ())
        .map_err(EngineError::Io)
}
