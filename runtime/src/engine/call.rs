//! The call machinery every guest kind shares: running a guest call
//! against its stop handle and deadline ([`race`]), and telling from a
//! failed call what went wrong ([`classify`]).

use std::time::Instant;

use wasmtime::Trap;

use super::interrupt::{RunningGuest, StopHandle};
use super::invocation::{InvocationContext, InvokeError};
use super::sandbox::Bounds;

/// How a guest call ended, before classification.
pub(super) enum CallEnd<T> {
    Returned(wasmtime::Result<T>),
    Stopped,
    TimedOut,
}

/// Runs `call` until it returns, the stop handle fires, or the deadline
/// passes; the latter two drop (cancel) the call.
pub(super) async fn race<T>(
    call: impl Future<Output = wasmtime::Result<T>>,
    stop: &StopHandle,
    deadline: Instant,
) -> CallEnd<T> {
    let _running = RunningGuest::enter();
    tokio::select! {
        biased;
        r = call => CallEnd::Returned(r),
        _ = stop.stopped() => CallEnd::Stopped,
        _ = tokio::time::sleep_until(deadline.into()) => CallEnd::TimedOut,
    }
}

/// Classifies a failed call. Order matters: a stop or deadline interrupt
/// surfaces as a trap, and so does an allocation failure after a refused
/// memory growth.
pub(super) fn classify(
    err: &wasmtime::Error,
    ctx: &InvocationContext,
    bounds: &Bounds,
    output_overflowed: bool,
    log: &[u8],
) -> InvokeError {
    let (stop, deadline) = (&ctx.stop, ctx.deadline);
    if stop.is_stopped() {
        return InvokeError::Stopped;
    }
    let trap = err.downcast_ref::<Trap>();
    if matches!(trap, Some(Trap::Interrupt)) && Instant::now() >= deadline {
        return InvokeError::Timeout(ctx.timeout);
    }
    if let (Some(Trap::OutOfFuel), Some(budget)) = (trap, bounds.fuel_budget()) {
        return InvokeError::FuelExhausted(budget);
    }
    let limiter = bounds.limiter();
    if output_overflowed {
        return InvokeError::OutputLimit;
    }
    if limiter.refused() {
        return InvokeError::OutOfMemory((limiter.limit_bytes() >> 20) as u64);
    }
    InvokeError::Trap(trap_message(err, log))
}

/// A trap's message: the trap itself, what the guest said as it panicked
/// (Rust prints `panicked at ...` to stderr before aborting), then the wasm
/// backtrace.
fn trap_message(err: &wasmtime::Error, log: &[u8]) -> String {
    let mut message = match err.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{:#}", err.root_cause()),
    };
    // Rust writes `thread '..' panicked at file:line:col:` and the panic
    // message on the next line.
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    if let Some(at) = lines.iter().rposition(|l| l.contains("panicked at")) {
        let panic = lines[at..]
            .iter()
            .take(2)
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        message.push_str(&format!(" ({panic})"));
    }
    if let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>() {
        message.push_str(&format!("\n{bt}"));
    }
    message.truncate(4096);
    message
}

/// Classifies a failed instantiation.
pub(super) fn instantiate_error(e: wasmtime::Error, bounds: &Bounds) -> InvokeError {
    let limiter = bounds.limiter();
    let msg = format!("{e:#}");
    if limiter.refused() {
        InvokeError::OutOfMemory((limiter.limit_bytes() >> 20) as u64)
    } else if msg.contains("maximum concurrent") || msg.contains("pooling allocator") {
        InvokeError::Capacity(format!("no instance slot available: {msg}"))
    } else {
        InvokeError::Trap(format!("instantiation failed: {msg}"))
    }
}
