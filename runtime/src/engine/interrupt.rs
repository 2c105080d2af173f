//! Stopping a guest: the stop handle and the per-invocation deadline.
//!
//! Two layers, as in Spin and `wasmtime serve`: wasm that burns CPU is cut off
//! by the store's epoch callback (one engine-wide ticker advances the epoch
//! every millisecond while a guest runs; the callback checks the stop flag
//! and the deadline each tick), and a guest parked in an async host call
//! (sleep, I/O) is cut off by dropping its call future when the stop handle
//! fires or the deadline passes. Either way the instance is retired, never
//! reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Notify;
use wasmtime::UpdateDeadline;

/// Asks a running invocation to stop. Cheap to clone; shared between the
/// caller (task Stop, terminate) and the engine. It also carries the one
/// fact the engine reports back while the guest runs: whether the guest
/// has proven CPU-bound (it ran through a whole epoch tick), so the caller
/// can move it off a serving thread (see [`super::offload`]).
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    stopped: AtomicBool,
    /// Epoch ticks the guest has run into (capped at 2).
    ticks: AtomicU8,
    notify: Notify,
}

impl StopHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests the stop. Idempotent.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Counts an epoch tick the guest ran into. The first may come right
    /// after it started (the ticker does not know when guests start); from
    /// the second it has run through a whole tick.
    pub(crate) fn count_tick(&self) {
        let ticks = self.inner.ticks.load(Ordering::Relaxed);
        if ticks < 2 {
            self.inner.ticks.store(ticks + 1, Ordering::Relaxed);
        }
    }

    /// Marks the guest CPU-bound at once (as two ticks would).
    #[cfg(test)]
    pub(crate) fn mark_cpu_bound(&self) {
        self.inner.ticks.store(2, Ordering::Relaxed);
    }

    /// Whether the guest has run through a whole epoch tick.
    pub fn is_cpu_bound(&self) -> bool {
        self.inner.ticks.load(Ordering::Relaxed) >= 2
    }

    /// Resolves once [`StopHandle::stop`] has been called.
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// Guest calls started and in progress in this process (every one goes
/// through [`race`](super::instance::race)). The epoch ticker reads them to
/// slow down while guests are quiet: ticking every millisecond on an idle
/// server cost 3.5% of a core on our 2-core VM, each tick a timer wake-up.
/// Process-wide rather than per engine because a server has one engine;
/// where a process has several (benchmarks), a guest of one only keeps the
/// other's ticker at full rate.
static GUEST_CALLS_STARTED: AtomicU64 = AtomicU64::new(0);
static GUEST_CALLS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts one guest call as running for as long as it is held.
pub(crate) struct RunningGuest(());

impl RunningGuest {
    pub(crate) fn enter() -> RunningGuest {
        GUEST_CALLS_STARTED.fetch_add(1, Ordering::Relaxed);
        GUEST_CALLS_RUNNING.fetch_add(1, Ordering::Relaxed);
        RunningGuest(())
    }
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        GUEST_CALLS_RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Guest calls started so far, and whether one is in progress. A caller
/// that compares the count with its last reading also sees calls that began
/// and ended in between.
pub(crate) fn guest_calls() -> (u64, bool) {
    (
        GUEST_CALLS_STARTED.load(Ordering::Relaxed),
        GUEST_CALLS_RUNNING.load(Ordering::Relaxed) > 0,
    )
}

/// The epoch callback for one invocation: interrupt on stop or deadline,
/// otherwise count the tick and yield to the executor, so a CPU-bound guest
/// never monopolises a runtime thread (and its caller can move it to the
/// guest threads).
pub fn epoch_callback<T>(
    stop: StopHandle,
    deadline: Instant,
) -> impl FnMut(wasmtime::StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> + Send + Sync + 'static {
    move |_| {
        if stop.is_stopped() || Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            stop.count_tick();
            Ok(UpdateDeadline::Yield(1))
        }
    }
}
