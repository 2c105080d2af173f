//! The instance pool: live instances per function version, reused warm.
//!
//! A pool answers one question per invocation — "which instance serves
//! this?" — with an idle one (a *warm* start) or a new one (a *cold* start),
//! under a global and a per-function instance cap. An instance serves one
//! invocation at a time and goes back to the pool afterwards unless it
//! trapped, timed out, was stopped, or reached its reuse count: those are
//! dropped, never reused. Idle instances are reclaimed after an idle timeout
//! (scale to zero), and when the global cap is reached the least recently
//! used idle instance of any function is evicted to make room. When no room
//! can be made within the acquire timeout the invocation fails with
//! [`InvokeError::Capacity`] (FC's throttling error), never by exhausting the
//! pooling allocator.
//!
//! Commands (WASI preview-1 modules) run `_start` once per instance, so each
//! of their invocations is a cold start by nature.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::engine::{
    Capture, Engine, GuestInstance, HttpBodyError, HyperOutgoingBody, InstanceSettings, Invocation, InvocationContext,
    InvokeError, Prepared,
};
use crate::metrics::{InvocationRecord, Metrics};
use crate::registry::{CodeDir, FunctionEntry, ResolvedFunction};

mod key;
mod lease;
mod listing;
mod live;
mod provisioned;
mod reclaim;
mod reserved;
mod slots;

use key::KeyFields;
pub use key::PoolKey;
pub use lease::Lease;
use lease::wrong_kind;
pub use live::InstanceInfo;
use slots::{BusyMark, FunctionPool, Slot};

/// Pool settings (from `wasmfc serve` flags).
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Live instances across all functions.
    pub max_instances: usize,
    /// Live instances of one function version.
    pub max_instances_per_function: usize,
    /// An idle instance unused this long is dropped.
    pub idle_timeout: Duration,
    /// How long an invocation waits for room before it is throttled.
    pub acquire_timeout: Duration,
    /// An instance is retired after serving this many invocations.
    pub max_reuse: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_instances: 1000,
            max_instances_per_function: 1000,
            idle_timeout: Duration::from_secs(300),
            acquire_timeout: Duration::from_secs(2),
            max_reuse: 10_000,
        }
    }
}

/// How an invocation got its instance (`X-Fc-Start-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    Cold,
    Warm,
    Provisioned,
}

impl StartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::Cold => "cold",
            StartKind::Warm => "warm",
            StartKind::Provisioned => "provisioned",
        }
    }
}

/// The outcome of an HTTP function's request.
pub struct HttpServed {
    pub start: StartKind,
    pub instance_id: String,
    pub response: Result<http::Response<HyperOutgoingBody>, InvokeError>,
    /// The guest's output so far (a log tail may be taken from it).
    pub log: Option<Capture>,
}

/// The outcome of a pooled invocation.
#[derive(Debug)]
pub struct PooledInvocation {
    pub invocation: Invocation,
    pub start: StartKind,
}

impl PooledInvocation {
    /// An invocation that failed before it had an instance.
    pub fn failed(error: InvokeError) -> PooledInvocation {
        PooledInvocation {
            invocation: Invocation::failed(error, String::new()),
            start: StartKind::Cold,
        }
    }
}

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    code: CodeDir,
    config: PoolConfig,
    /// Every invocation the pool runs, or fails to find an instance for,
    /// is reported here.
    metrics: Arc<Metrics>,
    global: Arc<Semaphore>,
    /// Searched on every invocation by a key of five strings: foldhash
    /// (seeded per process) hashes it in a fraction of SipHash's time.
    functions: DashMap<PoolKey, Arc<FunctionPool>, foldhash::fast::RandomState>,
    /// Each function's reserved-concurrency gate, by (service, function).
    gates: DashMap<(String, String), Arc<reserved::Gate>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(engine: Engine, code: CodeDir, metrics: Arc<Metrics>, config: PoolConfig) -> Pool {
        let pool = Pool {
            inner: Arc::new(Inner {
                engine,
                code,
                metrics,
                global: Arc::new(Semaphore::new(config.max_instances)),
                config,
                functions: DashMap::with_hasher(foldhash::fast::RandomState::default()),
                gates: DashMap::new(),
            }),
        };
        pool.spawn_reaper();
        pool
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Where the pool reports its invocations.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn function_pool(&self, resolved: &ResolvedFunction) -> Arc<FunctionPool> {
        // A shared lock for the common case (the pool exists); `entry`
        // takes the shard's write lock.
        if let Some(fp) = self.inner.functions.get(resolved as &dyn KeyFields) {
            return fp.clone();
        }
        self.inner
            .functions
            .entry(PoolKey::of(resolved))
            .or_insert_with(|| {
                let spec = &resolved.function.spec;
                Arc::new(FunctionPool {
                    gate: self.gate(&resolved.service, &spec.name),
                    entry: resolved.function.clone(),
                    label: format!("{}/{}", resolved.service, spec.name),
                    settings: Arc::new(InstanceSettings {
                        env: spec.env.clone(),
                        memory_limit_mb: spec.memory_mb,
                        run_initializer: spec.initializer,
                        allowed_outbound_hosts: Arc::new(spec.allowed_outbound_hosts.clone()),
                        fuel_budget: spec.fuel_budget,
                        reuse_http_instances: !spec.fresh_instance_per_request,
                    }),
                    idle: Mutex::new(Vec::new()),
                    returned: Notify::new(),
                    provisioned: Arc::default(),
                    live: Arc::default(),
                    permits: Arc::new(Semaphore::new(self.inner.config.max_instances_per_function)),
                })
            })
            .clone()
    }

    /// Runs one invocation of `resolved` on a pooled instance, waiting at
    /// most the configured acquire timeout for room.
    pub async fn invoke(&self, resolved: &ResolvedFunction, ctx: InvocationContext, event: Bytes) -> PooledInvocation {
        if let Some(e) = wrong_kind(resolved, false) {
            return PooledInvocation::failed(e);
        }
        let lease = self.acquire(resolved, &ctx, self.inner.config.acquire_timeout).await;
        Self::run_lease(lease, ctx, event).await
    }

    /// Like [`Pool::invoke`], but on a new instance whose compiled code is
    /// loaded again from the on-disk artifact: a true cold start.
    pub async fn invoke_cold(
        &self,
        resolved: &ResolvedFunction,
        ctx: InvocationContext,
        event: Bytes,
    ) -> PooledInvocation {
        if let Some(e) = wrong_kind(resolved, false) {
            return PooledInvocation::failed(e);
        }
        self.inner.engine.forget(&resolved.function.spec.wasm_sha256);
        let lease = self
            .acquire_inner(resolved, &ctx, self.inner.config.acquire_timeout, false)
            .await
            .map(|mut l| {
                // A forced cold start's instance is not kept (repeated cold
                // starts must not fill the function's instance cap), and
                // neither is its code, so the next forced cold start loads
                // it again — unloading it after this response, not during
                // the next request.
                l.forced_cold = true;
                l
            });
        Self::run_lease(lease, ctx, event).await
    }

    /// Serves one request of an HTTP function on a new instance, counted
    /// against the instance caps for as long as the guest runs (which may
    /// be after the response headers have gone out, while it streams the
    /// body). Answers the start kind, the instance id and the response.
    pub async fn serve_http<B>(
        &self,
        resolved: &ResolvedFunction,
        ctx: &InvocationContext,
        request: http::Request<B>,
    ) -> HttpServed
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<HttpBodyError>,
    {
        if let Some(e) = wrong_kind(resolved, true) {
            return HttpServed {
                start: StartKind::Cold,
                instance_id: String::new(),
                response: Err(e),
                log: None,
            };
        }
        let lease = match self.acquire(resolved, ctx, self.inner.config.acquire_timeout).await {
            Ok(lease) => lease,
            Err(e) => {
                return HttpServed {
                    start: StartKind::Cold,
                    instance_id: String::new(),
                    response: Err(e),
                    log: None,
                };
            }
        };
        let start = lease.start;
        let fp = lease.fp.clone();
        let started = Instant::now();
        match lease.into_http() {
            Ok((instance, hold)) => {
                let instance_id = instance.id().to_string();
                let (response, log) = instance.serve(ctx, request, move |back| hold.finish(back)).await;
                // Counted when the response head is ready: the guest may
                // stream its body for a while yet.
                let result = response.as_ref().map(|_| ()).map_err(InvokeError::error_type);
                self.observe(&fp, start, result.err(), started.elapsed(), None);
                HttpServed {
                    start,
                    instance_id,
                    response,
                    log: Some(log),
                }
            }
            Err((instance_id, e)) => {
                self.observe(&fp, start, Some(e.error_type()), Duration::ZERO, None);
                HttpServed {
                    start,
                    instance_id,
                    response: Err(e),
                    log: None,
                }
            }
        }
    }

    /// Reports one invocation (`failure` is its error type, if it failed).
    fn observe(
        &self,
        fp: &FunctionPool,
        start: StartKind,
        failure: Option<&'static str>,
        duration: Duration,
        fuel: Option<u64>,
    ) {
        self.inner.metrics.record_invocation(InvocationRecord {
            function: &fp.label,
            start: start.as_str(),
            result: failure.unwrap_or("success"),
            duration,
            fuel,
        });
    }

    async fn run_lease(lease: Result<Lease, InvokeError>, ctx: InvocationContext, event: Bytes) -> PooledInvocation {
        match lease {
            Ok(lease) => lease.invoke(ctx, event).await,
            Err(e) => PooledInvocation::failed(e),
        }
    }

    /// Takes an instance for one invocation: an idle one, or a new one once
    /// there is room (waiting at most `wait`). `ctx` supplies the request
    /// facts for an initializer run on a new instance.
    pub async fn acquire(
        &self,
        resolved: &ResolvedFunction,
        ctx: &InvocationContext,
        wait: Duration,
    ) -> Result<Lease, InvokeError> {
        self.acquire_inner(resolved, ctx, wait, true).await
    }

    async fn acquire_inner(
        &self,
        resolved: &ResolvedFunction,
        ctx: &InvocationContext,
        wait: Duration,
        reuse: bool,
    ) -> Result<Lease, InvokeError> {
        let lease = self.lease(self.function_pool(resolved), ctx, wait, reuse).await;
        if let Err(e) = &lease {
            // No instance (throttled, or its initializer failed): this
            // invocation failed too. Looked up again rather than cloned for
            // every invocation: failures are the rare case.
            let fp = self.function_pool(resolved);
            self.observe(&fp, StartKind::Cold, Some(e.error_type()), Duration::ZERO, None);
        }
        lease
    }

    async fn lease(
        &self,
        fp: Arc<FunctionPool>,
        ctx: &InvocationContext,
        wait: Duration,
        reuse: bool,
    ) -> Result<Lease, InvokeError> {
        let deadline = tokio::time::Instant::now() + wait;
        let throttled = || {
            InvokeError::Capacity(format!(
                "no instance available within {wait:?}: the instance limit is reached"
            ))
        };
        let reserved = fp.gate.enter(wait).await.map_err(InvokeError::ConcurrencyLimit)?;
        let waiter = fp.clone();
        let function = loop {
            // Created before looking, so an instance returned between the
            // look and the wait still wakes us.
            let returned = waiter.returned.notified();
            let idle = if !reuse {
                None
            } else {
                // Provisioned instances first: they are what the user pays
                // to keep ready, and target tracking measures their use.
                let mut idle = fp.idle.lock();
                match idle.iter().rposition(|i| i.slot.is_provisioned()) {
                    Some(at) => Some(idle.swap_remove(at)),
                    None => idle.pop(),
                }
            };
            if let Some(idle) = idle {
                idle.slot.tracked.record.begin(ctx);
                let (start, busy) = if idle.slot.is_provisioned() {
                    fp.provisioned.busy.fetch_add(1, Ordering::Relaxed);
                    (StartKind::Provisioned, Some(BusyMark(fp.provisioned.clone())))
                } else {
                    (StartKind::Warm, None)
                };
                return Ok(Lease {
                    pool: self.clone(),
                    fp,
                    slot: idle.slot,
                    start,
                    _busy: busy,
                    _reserved: reserved,
                    forced_cold: false,
                });
            }
            tokio::select! {
                permit = fp.permits.clone().acquire_owned() => break permit.map_err(|_| throttled())?,
                _ = returned => continue,
                _ = tokio::time::sleep_until(deadline) => return Err(throttled()),
            }
        };
        let global = self.reserve_global(deadline).await.ok_or_else(throttled)?;
        // Boxed: instantiation's future is several KB, and inline it would
        // make every warm invocation's future that large too (and futures
        // are moved by copying).
        let instance = Box::pin(self.create(&fp, ctx)).await?;
        let slot = Slot::new(&fp, instance, None, global, function);
        slot.tracked.record.begin(ctx);
        Ok(Lease {
            pool: self.clone(),
            fp,
            slot,
            start: StartKind::Cold,
            _busy: None,
            _reserved: reserved,
            forced_cold: false,
        })
    }

    /// Takes a global instance permit, evicting idle instances of other
    /// functions when the global cap is the obstacle.
    async fn reserve_global(&self, deadline: tokio::time::Instant) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(global) = self.inner.global.clone().try_acquire_owned() {
                return Some(global);
            }
            if self.evict_one_idle() {
                continue;
            }
            return tokio::time::timeout_at(deadline, self.inner.global.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok);
        }
    }

    async fn prepared(&self, entry: &FunctionEntry) -> Result<Arc<Prepared>, InvokeError> {
        let sha = entry.spec.wasm_sha256.clone();
        let path = self.inner.code.wasm_path(&sha);
        self.inner
            .engine
            .prepared(&sha, move || std::fs::read(path))
            .await
            .map_err(|e| InvokeError::Internal(format!("loading code: {e}")))
    }

    async fn create(&self, fp: &FunctionPool, ctx: &InvocationContext) -> Result<GuestInstance, InvokeError> {
        let prepared = self.prepared(&fp.entry).await?;
        let spec = &fp.entry.spec;
        let init_ctx = spec
            .initializer
            .then(|| ctx.with_timeout(Duration::from_secs(spec.initialization_timeout_s)));
        self.inner
            .engine
            .instantiate(prepared, fp.settings.clone(), init_ctx.as_ref())
            .await
    }

    /// Live instances (idle ones; busy ones hold permits).
    pub fn idle_count(&self) -> usize {
        self.inner.functions.iter().map(|f| f.idle.lock().len()).sum()
    }

    /// Instances alive now (idle + busy).
    pub fn live_count(&self) -> usize {
        self.inner.config.max_instances - self.inner.global.available_permits()
    }
}
