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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Notify;
use wasmtime::UpdateDeadline;

/// Asks a running invocation to stop. Cheap to clone; shared between the
/// caller (task Stop, terminate) and the engine.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    stopped: AtomicBool,
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

/// Guest calls in progress in this process (every one goes through
/// [`race`](super::instance::race)), and whether one started since the
/// epoch ticker last looked. The ticker reads them to slow down while
/// guests are quiet: ticking every millisecond on an idle server cost 3.5%
/// of a core on our 2-core VM, each tick a timer wake-up. Process-wide
/// rather than per engine because a server has one engine. Where a process
/// has several (benchmarks), one ticker may take the "started" flag before
/// another sees it; the worst that does is let that other ticker slow down
/// early, so a guest starting on its engine gets its first tick up to 10 ms
/// late.
static GUESTS_RUNNING: AtomicUsize = AtomicUsize::new(0);
static GUEST_STARTED: AtomicBool = AtomicBool::new(false);

/// Counts one guest call as running for as long as it is held.
pub(crate) struct RunningGuest(());

impl RunningGuest {
    pub(crate) fn enter() -> RunningGuest {
        GUESTS_RUNNING.fetch_add(1, Ordering::Relaxed);
        GUEST_STARTED.store(true, Ordering::Relaxed);
        RunningGuest(())
    }
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        GUESTS_RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// True if a guest call is in progress, or one started since the last
/// call of this function (a call shorter than a tick counts too).
pub(crate) fn guests_active() -> bool {
    GUEST_STARTED.swap(false, Ordering::Relaxed) | (GUESTS_RUNNING.load(Ordering::Relaxed) > 0)
}

/// The epoch callback for one invocation: interrupt on stop or deadline,
/// otherwise yield to the executor once per tick so a CPU-bound guest never
/// monopolises a runtime thread.
pub fn epoch_callback<T>(
    stop: StopHandle,
    deadline: Instant,
) -> impl FnMut(wasmtime::StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> + Send + Sync + 'static {
    move |_| {
        if stop.is_stopped() || Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    }
}
