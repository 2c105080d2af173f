//! The one place guest stores are built and armed.
//!
//! Every guest kind (event component, command, HTTP component,
//! orchestrator) runs in a store set up the same way, so a bound added here
//! holds for all of them:
//! - a WASI context with no sockets, no name lookups, no preopened files
//!   and only the function's own environment ([`locked_wasi`]);
//! - a resource table of bounded size ([`resource_table`]), so a guest
//!   cannot make the host hold millions of handles;
//! - a bound on the bytes one host call may copy out of the guest
//!   ([`MAX_HOSTCALL_BYTES`], wasmtime's hostcall fuel);
//! - the memory limiter (`memorySize`, [`super::limits`]);
//! - per call: the epoch deadline and callback (deadline and Stop, see
//!   [`super::interrupt`]) and, when the server meters fuel, a fresh fuel
//!   tank — the function's `fuelBudget`, or unbounded so the consumption
//!   can still be reported ([`arm`], [`fuel_consumed`]).
//!
//! Fuel is an engine-wide compilation choice in wasmtime (every guest's
//! code carries the counting), so metering is a server flag
//! (`--fuel-metering`), off by default: it costs 1.0–2.0× on tight loops.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;

use super::capture::Capture;
use super::interrupt::{StopHandle, epoch_callback};
use super::invocation::InvokeError;
use super::limits::MemoryLimiter;
use super::{Engine, outbound::AllowList};

/// Most entries (streams, pollables, requests, ...) one guest store's
/// resource table may hold. wasmtime's default is a million; a function
/// that needs more than this is not one we want to host.
pub const MAX_TABLE_ENTRIES: usize = 10_000;

/// Most bytes a guest may hand the host in one host call (a log write, an
/// outgoing body chunk, an orchestration call's input). wasmtime's default
/// is 128 MiB.
pub const MAX_HOSTCALL_BYTES: usize = 16 << 20;

/// How a function's instances are set up; fixed per function version.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// `environmentVariables`, the guest's whole environment.
    pub env: Vec<(String, String)>,
    /// `memorySize`.
    pub memory_limit_mb: u64,
    /// Run the guest's initializer when an instance is created.
    pub run_initializer: bool,
    /// Where an HTTP function may send requests (`allowedOutboundHosts`);
    /// empty denies all outgoing HTTP.
    pub allowed_outbound_hosts: Arc<AllowList>,
    /// `fuelBudget` (a wasmfc extension): the most fuel one invocation may
    /// consume. Needs a server with fuel metering.
    pub fuel_budget: Option<u64>,
    /// An HTTP function's instance serves the next request after a
    /// successful one (off with the function's `freshInstancePerRequest`).
    pub reuse_http_instances: bool,
}

/// The bounds a guest store carries in its data.
#[derive(Debug)]
pub struct Bounds {
    pub(super) limiter: MemoryLimiter,
    /// Set when the engine meters fuel: the tank each call starts with.
    fuel_tank: Option<u64>,
    fuel_budget: Option<u64>,
}

impl Bounds {
    /// The bounds of a store of a function with `settings`. A fuel budget
    /// on an engine without fuel metering is refused rather than silently
    /// not enforced.
    pub(super) fn new(engine: &Engine, memory_limit_mb: u64, fuel_budget: Option<u64>) -> Result<Bounds, InvokeError> {
        let metered = engine.config().fuel_metering;
        if fuel_budget.is_some() && !metered {
            return Err(InvokeError::Initialization(
                "the function has a fuelBudget but this server does not meter fuel: \
                 start it with --fuel-metering, or remove the budget"
                    .into(),
            ));
        }
        Ok(Bounds {
            limiter: MemoryLimiter::new((memory_limit_mb as usize) << 20),
            fuel_tank: metered.then(|| fuel_budget.unwrap_or(u64::MAX)),
            fuel_budget,
        })
    }

    pub(super) fn limiter(&self) -> &MemoryLimiter {
        &self.limiter
    }

    pub(super) fn fuel_budget(&self) -> Option<u64> {
        self.fuel_budget
    }
}

/// Store data that carries [`Bounds`].
pub trait Sandboxed: Send + 'static {
    fn bounds(&self) -> &Bounds;
    fn bounds_mut(&mut self) -> &mut Bounds;
}

/// Implements [`Sandboxed`] for store data types with a `bounds` field.
macro_rules! impl_sandboxed {
    ($($data:ty),+) => {$(
        impl $crate::engine::sandbox::Sandboxed for $data {
            fn bounds(&self) -> &$crate::engine::sandbox::Bounds {
                &self.bounds
            }
            fn bounds_mut(&mut self) -> &mut $crate::engine::sandbox::Bounds {
                &mut self.bounds
            }
        }
    )+};
}
pub(super) use impl_sandboxed;

/// A WASI context builder with everything off but the guest's output
/// (into `capture`) and its environment. Callers add what their kind needs
/// (stdin and arguments for commands, virtual clocks for orchestrators).
pub fn locked_wasi(capture: &Capture, env: &[(String, String)]) -> WasiCtxBuilder {
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(capture.stdout())
        .stderr(capture.stderr())
        .envs(env)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    wasi
}

/// A resource table bounded at [`MAX_TABLE_ENTRIES`].
pub fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_TABLE_ENTRIES);
    table
}

/// A new store for `data`, with its limiter and hostcall bound installed.
/// Arm it ([`arm`]) before running guest code in it.
pub fn new_store<T: Sandboxed>(engine: &Engine, data: T) -> Store<T> {
    let mut store = Store::new(engine.wasmtime(), data);
    store.limiter(|s| &mut s.bounds_mut().limiter);
    store.set_hostcall_fuel(MAX_HOSTCALL_BYTES);
    store
}

/// Arms `store` for one call: interrupted at `deadline` or on `stop`, and
/// with a full fuel tank when fuel is metered.
pub fn arm<T: Sandboxed>(store: &mut Store<T>, stop: &StopHandle, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(epoch_callback(stop.clone(), deadline));
    if let Some(tank) = store.data().bounds().fuel_tank
        && let Err(e) = store.set_fuel(tank)
    {
        tracing::error!(error = %e, "setting a store's fuel");
    }
}

/// The fuel consumed since the store was last armed, when fuel is metered.
pub fn fuel_consumed<T: Sandboxed>(store: &Store<T>) -> Option<u64> {
    let tank = store.data().bounds().fuel_tank?;
    let left = store.get_fuel().ok()?;
    Some(tank.saturating_sub(left))
}
