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

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::engine::{
    Capture, Engine, GuestInstance, GuestKind, HttpBodyError, HttpInstance, HyperOutgoingBody, InstanceSettings,
    Invocation, InvocationContext, InvokeError, Prepared, RecordedRequest, collect_response, offload,
};
use crate::metrics::{InvocationRecord, Metrics};
use crate::registry::{CodeDir, FunctionEntry, ResolvedFunction};

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

/// Identifies one function version's instances. The function's id and
/// modification time are part of it, so an update never serves old
/// settings from a warm instance.
#[derive(Debug, Clone)]
pub struct PoolKey {
    pub service: String,
    pub function: String,
    pub version: Option<u64>,
    function_id: String,
    last_modified: String,
}

impl PoolKey {
    pub fn of(resolved: &ResolvedFunction) -> PoolKey {
        let (service, function, version, function_id, last_modified) = resolved.fields();
        PoolKey {
            service: service.to_string(),
            function: function.to_string(),
            version,
            function_id: function_id.to_string(),
            last_modified: last_modified.to_string(),
        }
    }
}

/// The fields of a pool key, owned ([`PoolKey`]) or borrowed from a
/// [`ResolvedFunction`]. The function map is looked up on every invocation;
/// looking it up through borrowed fields spares building an owned key (four
/// string copies) each time.
trait KeyFields {
    fn fields(&self) -> (&str, &str, Option<u64>, &str, &str);
}

impl KeyFields for PoolKey {
    fn fields(&self) -> (&str, &str, Option<u64>, &str, &str) {
        (
            &self.service,
            &self.function,
            self.version,
            &self.function_id,
            &self.last_modified,
        )
    }
}

impl KeyFields for ResolvedFunction {
    fn fields(&self) -> (&str, &str, Option<u64>, &str, &str) {
        let spec = &self.function.spec;
        (
            &self.service,
            &spec.name,
            self.version,
            &spec.function_id,
            &spec.last_modified,
        )
    }
}

impl Hash for dyn KeyFields + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fields().hash(state);
    }
}

impl PartialEq for dyn KeyFields + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.fields() == other.fields()
    }
}

impl Eq for dyn KeyFields + '_ {}

// An owned key hashes and compares as its fields do, so that a map keyed by
// `PoolKey` can be searched with any `KeyFields`.
impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyFields).hash(state);
    }
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyFields) == (other as &dyn KeyFields)
    }
}

impl Eq for PoolKey {}

impl<'a> Borrow<dyn KeyFields + 'a> for PoolKey {
    fn borrow(&self) -> &(dyn KeyFields + 'a) {
        self
    }
}

/// Provisioned instances of one function version: how many should live,
/// how many do, and how many are serving right now (for target tracking).
#[derive(Debug, Default)]
struct Provisioned {
    target: AtomicU64,
    live: AtomicU64,
    busy: AtomicU64,
}

/// Marks a slot as provisioned; counts it live until it is dropped, so a
/// provisioned instance that traps or is retired is replaced by the
/// autoscaler's next round.
struct ProvisionedMark(Arc<Provisioned>);

impl Drop for ProvisionedMark {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a provisioned instance busy while a lease holds it.
struct BusyMark(Arc<Provisioned>);

impl Drop for BusyMark {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An instance with the capacity it holds.
struct Slot {
    instance: GuestInstance,
    uses: u64,
    provisioned: Option<ProvisionedMark>,
    _global: OwnedSemaphorePermit,
    _function: OwnedSemaphorePermit,
}

impl Slot {
    fn is_provisioned(&self) -> bool {
        self.provisioned.is_some()
    }
}

struct IdleSlot {
    slot: Slot,
    since: Instant,
}

struct FunctionPool {
    entry: Arc<FunctionEntry>,
    /// `service/function`, the metrics label of its invocations.
    label: String,
    settings: Arc<InstanceSettings>,
    idle: Mutex<Vec<IdleSlot>>,
    permits: Arc<Semaphore>,
    /// Signalled when an instance goes back to `idle`.
    returned: Notify,
    provisioned: Arc<Provisioned>,
}

impl FunctionPool {
    /// Returns an instance to the idle set and wakes one waiter. A
    /// provisioned instance above the current target retires instead.
    fn give_back(&self, slot: Slot) {
        if slot.is_provisioned()
            && self.provisioned.live.load(Ordering::Relaxed) > self.provisioned.target.load(Ordering::Relaxed)
        {
            return;
        }
        self.idle.lock().push(IdleSlot {
            slot,
            since: Instant::now(),
        });
        self.returned.notify_one();
    }
}

/// Instance permits held for as long as an HTTP function's guest runs.
struct HttpHold {
    _global: OwnedSemaphorePermit,
    _function: OwnedSemaphorePermit,
    _provisioned: Option<ProvisionedMark>,
    _busy: Option<BusyMark>,
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
            }),
        };
        pool.spawn_reaper();
        pool
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
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
                    entry: resolved.function.clone(),
                    label: format!("{}/{}", resolved.service, spec.name),
                    settings: Arc::new(InstanceSettings {
                        env: spec.env.clone(),
                        memory_limit_mb: spec.memory_mb,
                        run_initializer: spec.initializer,
                        allowed_outbound_hosts: Arc::new(spec.allowed_outbound_hosts.clone()),
                        fuel_budget: spec.fuel_budget,
                    }),
                    idle: Mutex::new(Vec::new()),
                    returned: Notify::new(),
                    provisioned: Arc::default(),
                    permits: Arc::new(Semaphore::new(self.inner.config.max_instances_per_function)),
                })
            })
            .clone()
    }

    /// Runs one invocation of `resolved` on a pooled instance, waiting at
    /// most the configured acquire timeout for room.
    pub async fn invoke(&self, resolved: &ResolvedFunction, ctx: InvocationContext, event: Bytes) -> PooledInvocation {
        if let Some(e) = wrong_kind(resolved, false) {
            return PooledInvocation {
                invocation: Invocation::failed(e, String::new()),
                start: StartKind::Cold,
            };
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
            return PooledInvocation {
                invocation: Invocation::failed(e, String::new()),
                start: StartKind::Cold,
            };
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
                let (response, log) = instance.serve(ctx, request, hold).await;
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
            Err(e) => PooledInvocation {
                invocation: Invocation::failed(e, String::new()),
                start: StartKind::Cold,
            },
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
        let fp = self.function_pool(resolved);
        let lease = self.lease(fp.clone(), ctx, wait, reuse).await;
        if let Err(e) = &lease {
            // No instance (throttled, or its initializer failed): this
            // invocation failed too.
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
        Ok(Lease {
            pool: self.clone(),
            fp,
            slot: Slot {
                instance,
                uses: 0,
                provisioned: None,
                _global: global,
                _function: function,
            },
            start: StartKind::Cold,
            _busy: None,
            forced_cold: false,
        })
    }

    /// Brings the provisioned instances of `resolved` to `target`: creates
    /// the missing ones (initializer run, ready for a provisioned start)
    /// and retires idle ones above it (busy ones retire when they return).
    /// Answers how many live now, and why it fell short, if it did.
    pub async fn provision(&self, resolved: &ResolvedFunction, target: u64) -> (u64, Option<String>) {
        let fp = self.function_pool(resolved);
        fp.provisioned.target.store(target, Ordering::Relaxed);
        self.retire_excess(&fp);
        while fp.provisioned.live.load(Ordering::Relaxed) < target {
            let Ok(function) = fp.permits.clone().try_acquire_owned() else {
                return (
                    fp.provisioned.live.load(Ordering::Relaxed),
                    Some("the per-function instance limit is reached".into()),
                );
            };
            let deadline = tokio::time::Instant::now() + self.inner.config.acquire_timeout;
            let Some(global) = self.reserve_global(deadline).await else {
                return (
                    fp.provisioned.live.load(Ordering::Relaxed),
                    Some("the global instance limit is reached".into()),
                );
            };
            let spec = &resolved.function.spec;
            let ctx = InvocationContext::request(
                format!("provision-{}", uuid::Uuid::new_v4()),
                resolved.target(),
                Duration::from_secs(spec.timeout_s),
            );
            let instance = match self.create(&fp, &ctx).await {
                Ok(i) => i,
                Err(e) => return (fp.provisioned.live.load(Ordering::Relaxed), Some(e.to_string())),
            };
            fp.provisioned.live.fetch_add(1, Ordering::Relaxed);
            fp.give_back(Slot {
                instance,
                uses: 0,
                provisioned: Some(ProvisionedMark(fp.provisioned.clone())),
                _global: global,
                _function: function,
            });
        }
        (fp.provisioned.live.load(Ordering::Relaxed), None)
    }

    fn retire_excess(&self, fp: &FunctionPool) {
        let target = fp.provisioned.target.load(Ordering::Relaxed);
        let mut idle = fp.idle.lock();
        while fp.provisioned.live.load(Ordering::Relaxed) > target {
            match idle.iter().position(|i| i.slot.is_provisioned()) {
                // Dropping the slot decrements `live`.
                Some(at) => drop(idle.swap_remove(at)),
                None => break,
            }
        }
    }

    /// Provisioned instances of `resolved`: (live, busy).
    pub fn provisioned(&self, resolved: &ResolvedFunction) -> (u64, u64) {
        match self.inner.functions.get(resolved as &dyn KeyFields) {
            Some(fp) => (
                fp.provisioned.live.load(Ordering::Relaxed),
                fp.provisioned.busy.load(Ordering::Relaxed),
            ),
            None => (0, 0),
        }
    }

    /// Releases every provisioned instance of one pool key (its config was
    /// deleted or now resolves elsewhere).
    pub fn unprovision(&self, key: &PoolKey) {
        if let Some(fp) = self.inner.functions.get(key).map(|f| f.clone()) {
            fp.provisioned.target.store(0, Ordering::Relaxed);
            self.retire_excess(&fp);
        }
    }

    /// Provisioned instances alive across all functions: (live, busy).
    pub fn provisioned_totals(&self) -> (u64, u64) {
        self.inner.functions.iter().fold((0, 0), |(l, b), fp| {
            (
                l + fp.provisioned.live.load(Ordering::Relaxed),
                b + fp.provisioned.busy.load(Ordering::Relaxed),
            )
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

    /// Drops the least recently used non-provisioned idle instance.
    fn evict_one_idle(&self) -> bool {
        let mut oldest: Option<(Instant, Arc<FunctionPool>)> = None;
        for fp in self.inner.functions.iter() {
            if let Some(since) = fp
                .idle
                .lock()
                .iter()
                .filter(|i| !i.slot.is_provisioned())
                .map(|i| i.since)
                .min()
                && oldest.as_ref().is_none_or(|(t, _)| since < *t)
            {
                oldest = Some((since, fp.value().clone()));
            }
        }
        let Some((since, fp)) = oldest else { return false };
        let mut idle = fp.idle.lock();
        if let Some(pos) = idle.iter().position(|i| !i.slot.is_provisioned() && i.since == since) {
            idle.remove(pos);
            return true;
        }
        !idle.is_empty()
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

    /// Drops idle instances of one function (it was updated or deleted).
    pub fn release_function(&self, service: &str, function: &str) {
        self.inner
            .functions
            .retain(|k, _| !(k.service == service && k.function == function));
    }

    /// Drops the instances of a function's LATEST only: its published
    /// versions (and the provisioned instances behind their aliases) are
    /// snapshots that a change of LATEST does not touch.
    pub fn release_latest(&self, service: &str, function: &str) {
        self.inner
            .functions
            .retain(|k, _| !(k.service == service && k.function == function && k.version.is_none()));
    }

    /// Live instances (idle ones; busy ones hold permits).
    pub fn idle_count(&self) -> usize {
        self.inner.functions.iter().map(|f| f.idle.lock().len()).sum()
    }

    /// Instances alive now (idle + busy).
    pub fn live_count(&self) -> usize {
        self.inner.config.max_instances - self.inner.global.available_permits()
    }

    fn spawn_reaper(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let timeout = inner.config.idle_timeout;
                inner.functions.retain(|_, fp| {
                    fp.idle
                        .lock()
                        .retain(|i| i.slot.is_provisioned() || i.since.elapsed() < timeout);
                    // Keep the function's pool while anything references it.
                    !fp.idle.lock().is_empty()
                        || Arc::strong_count(fp) > 1
                        || fp.permits.available_permits() < inner.config.max_instances_per_function
                });
            }
        });
    }
}

/// Drops an instance that will not serve again once the caller's response
/// is on its way. Tearing a store down (resetting its memory slot, and for a
/// forced cold start unmapping its code) costs tens of microseconds and
/// TLB shootdowns the caller should not wait for. The spawned task lands in
/// the current worker's next-task slot, so it runs right after the request's
/// task yields (typically once the response is written), on the same core.
/// The slot keeps its permits until then, so the instance caps still count
/// the instance while it is torn down.
fn discard(slot: Slot, unload: Option<(Engine, String)>) {
    let teardown = move || {
        drop(slot);
        if let Some((engine, wasm_sha256)) = unload {
            engine.unload(&wasm_sha256);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(async move { teardown() })),
        Err(_) => teardown(),
    }
}

/// The executor is chosen by the function's kind, known since its code was
/// uploaded: an HTTP function is served only through [`Pool::serve_http`]
/// (`http` set), event functions and commands only through
/// [`Pool::invoke`], orchestrators by neither. `Some`: the invocation
/// reached the wrong executor and fails at once, before any instance.
fn wrong_kind(resolved: &ResolvedFunction, http: bool) -> Option<InvokeError> {
    match (resolved.function.spec.kind, http) {
        (GuestKind::HttpComponent, false) => Some(InvokeError::http_function()),
        (GuestKind::EventComponent | GuestKind::Command, true) => Some(InvokeError::event_function()),
        (GuestKind::Orchestrator, _) => Some(InvokeError::WrongGuestKind(
            "this function is an orchestrator: start it through the orchestration API \
             (POST /runtime/webhooks/durabletask/orchestrators/{name})"
                .into(),
        )),
        _ => None,
    }
}

/// One instance, held for one invocation.
pub struct Lease {
    pool: Pool,
    fp: Arc<FunctionPool>,
    slot: Slot,
    start: StartKind,
    /// Held while a provisioned instance serves (dropped with the lease).
    _busy: Option<BusyMark>,
    /// A forced cold start: after this invocation drop the instance even if
    /// it could serve again, and unload the function's compiled code with it.
    forced_cold: bool,
}

impl Lease {
    pub fn start(&self) -> StartKind {
        self.start
    }

    pub fn instance_id(&self) -> &str {
        self.slot.instance.id()
    }

    /// Gives the instance back unused.
    pub fn release(self) {
        self.fp.give_back(self.slot);
    }

    /// Splits the lease into an HTTP function's instance and what must be
    /// held while its guest runs (the instance permits).
    fn into_http(self) -> Result<(HttpInstance, HttpHold), (String, InvokeError)> {
        let Lease { slot, _busy, .. } = self;
        let Slot {
            instance,
            provisioned,
            _global,
            _function,
            ..
        } = slot;
        match instance {
            GuestInstance::Http(instance) => Ok((
                instance,
                HttpHold {
                    _global,
                    _function,
                    _provisioned: provisioned,
                    _busy,
                },
            )),
            other => Err((other.id().to_string(), InvokeError::event_function())),
        }
    }

    /// Runs a recorded HTTP request (an async invocation through an HTTP
    /// trigger) and collects the whole response as the result.
    pub async fn invoke_http(self, ctx: InvocationContext, recorded: Bytes) -> PooledInvocation {
        let started = Instant::now();
        let start = self.start;
        let (pool, fp) = (self.pool.clone(), self.fp.clone());
        let (result, instance_id) = match RecordedRequest::decode(&recorded).and_then(|r| r.to_request()) {
            Err(e) => (Err(e), self.instance_id().to_string()),
            Ok(request) => match self.into_http() {
                Err((id, e)) => (Err(e), id),
                Ok((instance, hold)) => {
                    let id = instance.id().to_string();
                    let result = match instance.serve(&ctx, request, hold).await.0 {
                        Ok(response) => collect_response(response).await,
                        Err(e) => Err(e),
                    };
                    (result, id)
                }
            },
        };
        let duration = started.elapsed();
        pool.observe(
            &fp,
            start,
            result.as_ref().err().map(InvokeError::error_type),
            duration,
            None,
        );
        PooledInvocation {
            invocation: Invocation {
                result,
                log: Bytes::new(),
                duration,
                peak_memory_bytes: 0,
                instance_id,
                fuel_consumed: None,
            },
            start,
        }
    }

    /// Runs the invocation; the instance goes back to the pool afterwards
    /// if it may serve again, and is dropped otherwise. A guest that proves
    /// CPU-bound finishes on the guest threads ([`offload`]).
    pub async fn invoke(self, ctx: InvocationContext, event: Bytes) -> PooledInvocation {
        let stop = ctx.stop.clone();
        offload::run(self.invoke_here(ctx, event), stop).await
    }

    async fn invoke_here(mut self, ctx: InvocationContext, event: Bytes) -> PooledInvocation {
        let invocation = self.slot.instance.invoke(&ctx, event).await;
        self.pool.observe(
            &self.fp,
            self.start,
            invocation.result.as_ref().err().map(InvokeError::error_type),
            invocation.duration,
            invocation.fuel_consumed,
        );
        self.slot.uses += 1;
        let survives = invocation
            .result
            .as_ref()
            .err()
            .is_none_or(InvokeError::instance_survives);
        if survives
            && !self.forced_cold
            && self.fp.entry.spec.kind.reusable()
            && self.slot.uses < self.pool.inner.config.max_reuse
        {
            self.fp.give_back(self.slot);
        } else {
            let unload = self
                .forced_cold
                .then(|| (self.pool.inner.engine.clone(), self.fp.entry.spec.wasm_sha256.clone()));
            discard(self.slot, unload);
        }
        PooledInvocation {
            invocation,
            start: self.start,
        }
    }
}
