//! Orchestrator runs: one pass of an orchestrator's code over its journal.
//!
//! An orchestrator touches the world only through the
//! `wasmfc:function/orchestration` imports, and each of them is answered by
//! a [`Journal`] (the durable module's replay state). A call the journal
//! cannot answer yet *interrupts* the run: the host call returns an error
//! carrying an [`Interrupt`], the guest traps, and its store is dropped —
//! nothing of a waiting orchestration stays in memory. The next run starts
//! from the top on a fresh instance and the journal answers the same calls
//! the same way.
//!
//! WASI is linked (a Rust guest's std needs it) but virtualised: the wall
//! clock is frozen at the instance's creation, the monotonic clock advances
//! one nanosecond per read, random bytes come from a seed derived from the
//! instance, and there are no files, sockets or environment. So a re-run sees
//! the same world as the first run did.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, ResourceTable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::call::{CallEnd, classify, race};
use super::capture::Capture;
use super::interrupt::StopHandle;
use super::invocation::{InvocationContext, InvokeError};
use super::sandbox::{self, Bounds, Sandboxed};
use super::{Engine, EngineError, Prepared};

pub(super) mod bindings {
    wasmtime::component::bindgen!({
        path: "../host-api/wit",
        world: "orchestrator-function",
        imports: { default: trappable },
        exports: { default: async },
    });
}

use bindings::exports::wasmfc::function::orchestrator;
use bindings::wasmfc::function::orchestration;
pub use bindings::wasmfc::function::orchestration::{ActivityCall, RetryPolicy};

/// Why a host call ended the run instead of answering.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Interrupt {
    /// The answer is not in the journal yet: wait for it.
    #[error("the orchestrator waits for an answer that has not arrived")]
    Suspend,
    /// The orchestrator asked to start over with this input.
    #[error("the orchestrator continued as new")]
    ContinueAsNew(String),
    /// The code asked for something other than what the journal recorded.
    #[error("{0}")]
    NonDeterminism(String),
}

/// What answers an orchestrator's host calls (see module docs).
pub trait Journal: Send + 'static {
    fn call_functions(&mut self, calls: Vec<ActivityCall>) -> Result<Vec<Result<String, String>>, Interrupt>;
    fn wait_for_event(&mut self, name: String, timeout_ms: Option<u64>) -> Result<Option<String>, Interrupt>;
    fn create_timer(&mut self, delay_ms: u64) -> Result<(), Interrupt>;
    fn set_custom_status(&mut self, status: String);
    fn continue_as_new(&mut self, input: String) -> Interrupt;
    fn now(&mut self) -> Result<u64, Interrupt>;
    fn new_guid(&mut self) -> String;
    fn instance_id(&self) -> String;
    fn is_replaying(&self) -> bool;
}

/// Store data of an orchestrator run.
pub struct OrchestratorState {
    wasi: WasiCtx,
    table: ResourceTable,
    bounds: Bounds,
    journal: Box<dyn Journal>,
}

sandbox::impl_sandboxed!(OrchestratorState);

/// A linked orchestrator component.
pub(super) struct OrchestratorPre {
    pre: wasmtime::component::InstancePre<OrchestratorState>,
    indices: orchestrator::GuestIndices,
}

impl WasiView for OrchestratorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn interrupted<T>(r: Result<T, Interrupt>) -> wasmtime::Result<T> {
    r.map_err(wasmtime::Error::new)
}

impl orchestration::Host for OrchestratorState {
    fn call_function(
        &mut self,
        name: String,
        input: String,
        retry: Option<RetryPolicy>,
    ) -> wasmtime::Result<Result<String, String>> {
        let mut out = interrupted(self.journal.call_functions(vec![ActivityCall { name, input, retry }]))?;
        out.pop()
            .ok_or_else(|| wasmtime::Error::msg("the journal answered no result for one call"))
    }

    fn call_functions(&mut self, calls: Vec<ActivityCall>) -> wasmtime::Result<Vec<Result<String, String>>> {
        interrupted(self.journal.call_functions(calls))
    }

    fn wait_for_event(&mut self, name: String, timeout_ms: Option<u64>) -> wasmtime::Result<Option<String>> {
        interrupted(self.journal.wait_for_event(name, timeout_ms))
    }

    fn create_timer(&mut self, delay_ms: u64) -> wasmtime::Result<()> {
        interrupted(self.journal.create_timer(delay_ms))
    }

    fn set_custom_status(&mut self, status: String) -> wasmtime::Result<()> {
        self.journal.set_custom_status(status);
        Ok(())
    }

    fn continue_as_new(&mut self, input: String) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(self.journal.continue_as_new(input)))
    }

    fn now(&mut self) -> wasmtime::Result<u64> {
        interrupted(self.journal.now())
    }

    fn new_guid(&mut self) -> wasmtime::Result<String> {
        Ok(self.journal.new_guid())
    }

    fn instance_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.journal.instance_id())
    }

    fn is_replaying(&mut self) -> wasmtime::Result<bool> {
        Ok(self.journal.is_replaying())
    }
}

/// Adds the orchestration imports (and virtualisable WASI) to a linker.
pub(super) fn add_to_linker(linker: &mut wasmtime::component::Linker<OrchestratorState>) -> Result<(), EngineError> {
    wasmtime_wasi::p2::add_to_linker_async(linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
    orchestration::add_to_linker::<OrchestratorState, HasSelf<OrchestratorState>>(linker, |s| s)
        .map_err(|e| EngineError::Config(format!("{e:#}")))
}

/// True for a component exporting `wasmfc:function/orchestrator`.
pub(super) fn exports_orchestrator(component: &wasmtime::component::Component) -> bool {
    component
        .component_type()
        .exports(component.engine())
        .any(|(name, _)| name.starts_with("wasmfc:function/orchestrator@"))
}

pub(super) fn prepare(
    linker: &wasmtime::component::Linker<OrchestratorState>,
    component: &wasmtime::component::Component,
) -> Result<OrchestratorPre, EngineError> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| EngineError::InvalidCode(format!("cannot link orchestrator: {e:#}")))?;
    let indices = orchestrator::GuestIndices::new(&pre)
        .map_err(|e| EngineError::InvalidCode(format!("not an orchestrator component: {e:#}")))?;
    Ok(OrchestratorPre { pre, indices })
}

/// A wall clock stopped at one instant.
struct FrozenClock(Duration);

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// A monotonic clock that moves one nanosecond per read: deterministic, and
/// never standing still (so a guest's "elapsed" loops end).
#[derive(Default)]
struct CountingClock(std::sync::atomic::AtomicU64);

impl HostMonotonicClock for CountingClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// How one orchestrator run is set up.
pub struct RunSettings {
    pub memory_limit_mb: u64,
    /// Most time one run may take (a run only computes; waiting is not
    /// counted because waiting ends the run).
    pub timeout: Duration,
    pub stop: StopHandle,
    /// What the frozen WASI wall clock shows: the instance's creation.
    pub created_ms: u64,
    /// Seed of the guest's random bytes.
    pub seed: [u8; 32],
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// `run` returned.
    Returned(Result<String, String>),
    /// A host call ended the run (waiting, continue-as-new, divergence).
    Interrupted(Interrupt),
    /// The guest trapped, timed out, ran out of memory or was stopped.
    Failed(InvokeError),
}

/// The outcome of one run: how it ended, the journal (with whatever the run
/// added to it) and the guest's log.
pub struct RunOutcome {
    pub end: RunEnd,
    pub journal: Box<dyn Journal>,
    pub log: bytes::Bytes,
}

impl Engine {
    /// Runs `prepared` (an orchestrator) once from the start against
    /// `journal`.
    pub async fn run_orchestrator(
        &self,
        prepared: Arc<Prepared>,
        journal: Box<dyn Journal>,
        input: String,
        settings: RunSettings,
    ) -> Result<RunOutcome, (InvokeError, Box<dyn Journal>)> {
        let Some(OrchestratorPre { pre, indices }) = prepared.orchestrator() else {
            return Err((
                InvokeError::Internal("this code is not an orchestrator".into()),
                journal,
            ));
        };
        let capture = Capture::log_only(self.config().log_limit);
        let bounds = match Bounds::new(self, settings.memory_limit_mb, None) {
            Ok(bounds) => bounds,
            Err(e) => return Err((e, journal)),
        };
        // No environment; clocks and randomness replayable (module docs).
        let mut wasi = sandbox::locked_wasi(&capture, &[]);
        wasi.wall_clock(FrozenClock(Duration::from_millis(settings.created_ms)))
            .monotonic_clock(CountingClock::default())
            .secure_random(wasmtime_wasi::random::Deterministic::new(settings.seed.to_vec()))
            .insecure_random(wasmtime_wasi::random::Deterministic::new(
                settings.seed.iter().rev().copied().collect(),
            ))
            .insecure_random_seed(u128::from_le_bytes(settings.seed[..16].try_into().unwrap_or_default()));
        let state = OrchestratorState {
            wasi: wasi.build(),
            table: sandbox::resource_table(),
            bounds,
            journal,
        };
        let mut store = sandbox::new_store(self, state);
        let ctx = InvocationContext::internal(settings.timeout, settings.stop.clone());
        let deadline = ctx.deadline;
        sandbox::arm(&mut store, &settings.stop, deadline);

        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let guest = indices.load(&mut store, &instance)?;
            guest.call_run(&mut store, &input).await
        };
        let end = race(call, &settings.stop, deadline).await;
        let log = capture.take().log;
        let end = match end {
            CallEnd::Returned(Ok(r)) => RunEnd::Returned(r),
            CallEnd::Returned(Err(e)) => match e.downcast_ref::<Interrupt>() {
                Some(i) => RunEnd::Interrupted(i.clone()),
                None => RunEnd::Failed(classify(&e, &ctx, store.data().bounds(), false, &log)),
            },
            CallEnd::Stopped => RunEnd::Failed(InvokeError::Stopped),
            CallEnd::TimedOut => RunEnd::Failed(InvokeError::Timeout(settings.timeout)),
        };
        let journal = store.into_data().journal;
        Ok(RunOutcome { end, journal, log })
    }
}
