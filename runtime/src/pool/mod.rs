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
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::{
    Engine, GuestInstance, InstanceSettings, Invocation, InvocationContext, InvokeError, Prepared, StopHandle,
};
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub service: String,
    pub function: String,
    pub version: Option<u64>,
    function_id: String,
    last_modified: String,
}

impl PoolKey {
    pub fn of(resolved: &ResolvedFunction) -> PoolKey {
        PoolKey {
            service: resolved.service.clone(),
            function: resolved.function.spec.name.clone(),
            version: resolved.version,
            function_id: resolved.function.spec.function_id.clone(),
            last_modified: resolved.function.spec.last_modified.clone(),
        }
    }
}

/// An instance with the capacity it holds.
struct Slot {
    instance: GuestInstance,
    uses: u64,
    provisioned: bool,
    _global: OwnedSemaphorePermit,
    _function: OwnedSemaphorePermit,
}

struct IdleSlot {
    slot: Slot,
    since: Instant,
}

struct FunctionPool {
    entry: Arc<FunctionEntry>,
    settings: Arc<InstanceSettings>,
    idle: Mutex<Vec<IdleSlot>>,
    permits: Arc<Semaphore>,
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
    global: Arc<Semaphore>,
    functions: DashMap<PoolKey, Arc<FunctionPool>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(engine: Engine, code: CodeDir, config: PoolConfig) -> Pool {
        let pool = Pool {
            inner: Arc::new(Inner {
                engine,
                code,
                global: Arc::new(Semaphore::new(config.max_instances)),
                config,
                functions: DashMap::new(),
            }),
        };
        pool.spawn_reaper();
        pool
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn function_pool(&self, resolved: &ResolvedFunction) -> Arc<FunctionPool> {
        let key = PoolKey::of(resolved);
        self.inner
            .functions
            .entry(key)
            .or_insert_with(|| {
                let spec = &resolved.function.spec;
                Arc::new(FunctionPool {
                    entry: resolved.function.clone(),
                    settings: Arc::new(InstanceSettings {
                        env: spec.env.clone(),
                        memory_limit_mb: spec.memory_mb,
                        run_initializer: spec.initializer,
                    }),
                    idle: Mutex::new(Vec::new()),
                    permits: Arc::new(Semaphore::new(self.inner.config.max_instances_per_function)),
                })
            })
            .clone()
    }

    /// Runs one invocation of `resolved` on a pooled instance.
    pub async fn invoke(&self, resolved: &ResolvedFunction, ctx: &InvocationContext, event: Bytes) -> PooledInvocation {
        let fp = self.function_pool(resolved);
        let (mut slot, start) = match self.acquire(&fp, ctx).await {
            Ok(s) => s,
            Err(e) => {
                return PooledInvocation {
                    invocation: Invocation {
                        result: Err(e),
                        log: Bytes::new(),
                        duration: Duration::ZERO,
                        peak_memory_bytes: 0,
                        instance_id: String::new(),
                    },
                    start: StartKind::Cold,
                };
            }
        };
        let invocation = slot.instance.invoke(ctx, event).await;
        slot.uses += 1;
        let survives = invocation
            .result
            .as_ref()
            .err()
            .is_none_or(InvokeError::instance_survives);
        if survives && fp.entry.spec.kind.reusable() && slot.uses < self.inner.config.max_reuse {
            fp.idle.lock().push(IdleSlot {
                slot,
                since: Instant::now(),
            });
        }
        PooledInvocation { invocation, start }
    }

    async fn acquire(&self, fp: &Arc<FunctionPool>, ctx: &InvocationContext) -> Result<(Slot, StartKind), InvokeError> {
        if let Some(idle) = fp.idle.lock().pop() {
            let kind = if idle.slot.provisioned {
                StartKind::Provisioned
            } else {
                StartKind::Warm
            };
            return Ok((idle.slot, kind));
        }
        let (global, function) = self.reserve(fp).await?;
        let instance = self.create(fp, ctx).await?;
        Ok((
            Slot {
                instance,
                uses: 0,
                provisioned: false,
                _global: global,
                _function: function,
            },
            StartKind::Cold,
        ))
    }

    /// Takes a per-function and a global instance permit, evicting idle
    /// instances of other functions when the global cap is the obstacle.
    async fn reserve(
        &self,
        fp: &Arc<FunctionPool>,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), InvokeError> {
        let deadline = tokio::time::Instant::now() + self.inner.config.acquire_timeout;
        let throttled = || {
            InvokeError::Capacity(format!(
                "no instance available within {:?}: the instance limit is reached",
                self.inner.config.acquire_timeout
            ))
        };
        let function = tokio::time::timeout_at(deadline, fp.permits.clone().acquire_owned())
            .await
            .map_err(|_| throttled())?
            .map_err(|_| throttled())?;
        loop {
            if let Ok(global) = self.inner.global.clone().try_acquire_owned() {
                return Ok((global, function));
            }
            if self.evict_one_idle() {
                continue;
            }
            match tokio::time::timeout_at(deadline, self.inner.global.clone().acquire_owned()).await {
                Ok(Ok(global)) => return Ok((global, function)),
                _ => return Err(throttled()),
            }
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
                .filter(|i| !i.slot.provisioned)
                .map(|i| i.since)
                .min()
                && oldest.as_ref().is_none_or(|(t, _)| since < *t)
            {
                oldest = Some((since, fp.value().clone()));
            }
        }
        let Some((since, fp)) = oldest else { return false };
        let mut idle = fp.idle.lock();
        if let Some(pos) = idle.iter().position(|i| !i.slot.provisioned && i.since == since) {
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
        let init_ctx = spec.initializer.then(|| {
            InvocationContext::new(
                ctx.request_id.clone(),
                ctx.service.clone(),
                ctx.function.clone(),
                ctx.qualifier.clone(),
                ctx.version_id.clone(),
                Duration::from_secs(spec.initialization_timeout_s),
                ctx.task_id.clone(),
                ctx.attempt,
                ctx.stop.clone(),
            )
        });
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
                        .retain(|i| i.slot.provisioned || i.since.elapsed() < timeout);
                    // Keep the function's pool while anything references it.
                    !fp.idle.lock().is_empty()
                        || Arc::strong_count(fp) > 1
                        || fp.permits.available_permits() < inner.config.max_instances_per_function
                });
            }
        });
    }
}

/// A stop handle that is never fired, for invocations nobody can stop.
pub fn unstoppable() -> StopHandle {
    StopHandle::new()
}
