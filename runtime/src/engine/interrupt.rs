//! Stopping a guest: the stop handle and the per-invocation deadline.
//!
//! Two layers, as in Spin and `wasmtime serve`: wasm that burns CPU is cut off
//! by the store's epoch callback (one engine-wide ticker advances the epoch
//! every millisecond; the callback checks the stop flag and the deadline each
//! tick), and a guest parked in an async host call (sleep, I/O) is cut off by
//! dropping its call future when the stop handle fires or the deadline
//! passes. Either way the instance is retired, never reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
