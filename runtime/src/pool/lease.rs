//! A lease: one instance held for one invocation, and running the
//! invocation on it.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::live::Tracked;
use super::reserved::GatePass;
use super::slots::{BusyMark, FunctionPool, ProvisionedMark, Slot};
use super::{Pool, PooledInvocation, StartKind};
use crate::engine::{
    Engine, GuestInstance, GuestKind, HttpInstance, Invocation, InvocationContext, InvokeError, RecordedRequest,
    collect_response, offload,
};
use crate::registry::ResolvedFunction;

/// What an HTTP function's lease holds while its guest runs (the instance
/// permits, the provisioned and reserved-concurrency marks), and what puts
/// the instance back together when the guest is done.
pub(super) struct HttpHold {
    pool: Pool,
    fp: Arc<FunctionPool>,
    uses: u64,
    forced_cold: bool,
    global: OwnedSemaphorePermit,
    function: OwnedSemaphorePermit,
    provisioned: Option<ProvisionedMark>,
    _busy: Option<BusyMark>,
    _reserved: GatePass,
    /// Listed among the live instances while its guest runs.
    tracked: Tracked,
}

impl HttpHold {
    /// The guest is done: `back` is its instance when it may serve again
    /// (see [`HttpInstance::serve`]), then idle in the pool unless it has
    /// served its share; otherwise the instance is gone and its permits go
    /// with this hold.
    pub(super) fn finish(self, back: Option<HttpInstance>) {
        let HttpHold {
            pool,
            fp,
            uses,
            forced_cold,
            global,
            function,
            provisioned,
            tracked,
            ..
        } = self;
        let Some(instance) = back else { return };
        let slot = Slot {
            instance: GuestInstance::Http(instance),
            uses: uses + 1,
            provisioned,
            tracked,
            _global: global,
            _function: function,
        };
        if forced_cold || slot.uses >= pool.inner.config.max_reuse {
            let unload = forced_cold.then(|| (pool.inner.engine.clone(), fp.entry.spec.wasm_sha256.clone()));
            discard(slot, unload);
        } else {
            fp.give_back(slot);
        }
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
pub(super) fn discard(slot: Slot, unload: Option<(Engine, String)>) {
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
pub(super) fn wrong_kind(resolved: &ResolvedFunction, http: bool) -> Option<InvokeError> {
    match (resolved.function.spec.kind, http) {
        (GuestKind::HttpComponent, false) => Some(InvokeError::http_function()),
        (GuestKind::EventComponent | GuestKind::Command, true) => Some(InvokeError::event_function()),
        (GuestKind::Orchestrator, _) => Some(InvokeError::orchestrator_function()),
        _ => None,
    }
}

/// One instance, held for one invocation.
pub struct Lease {
    pub(super) pool: Pool,
    pub(super) fp: Arc<FunctionPool>,
    pub(super) slot: Slot,
    pub(super) start: StartKind,
    /// Held while a provisioned instance serves (dropped with the lease).
    pub(super) _busy: Option<BusyMark>,
    /// Inside the function's reserved concurrency (left with the lease).
    pub(super) _reserved: GatePass,
    /// A forced cold start: after this invocation drop the instance even if
    /// it could serve again, and unload the function's compiled code with it.
    pub(super) forced_cold: bool,
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
    pub(super) fn into_http(self) -> Result<(HttpInstance, HttpHold), (String, InvokeError)> {
        let Lease {
            pool,
            fp,
            slot,
            _busy,
            _reserved,
            forced_cold,
            ..
        } = self;
        let Slot {
            instance,
            uses,
            provisioned,
            tracked,
            _global,
            _function,
        } = slot;
        match instance {
            GuestInstance::Http(instance) => Ok((
                instance,
                HttpHold {
                    pool,
                    fp,
                    uses,
                    forced_cold,
                    global: _global,
                    function: _function,
                    provisioned,
                    _busy,
                    _reserved,
                    tracked,
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
                    let result = match instance.serve(&ctx, request, move |back| hold.finish(back)).await.0 {
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
        offload::run(Box::pin(self.invoke_here(ctx, event)), stop).await
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
        self.slot.tracked.record.served(invocation.peak_memory_bytes as usize);
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
