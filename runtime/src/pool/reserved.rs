//! Reserved concurrency (FC 3.0's PutConcurrencyConfig): the most
//! invocations of one function, over all its versions and aliases, that run
//! at once. One gate per function, shared by the function's pools; every
//! invocation passes it (two atomic operations when no limit is set), so a
//! limit set while invocations run counts them too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::Pool;

/// No limit.
const UNLIMITED: u64 = u64::MAX;

#[derive(Debug)]
pub(super) struct Gate {
    limit: AtomicU64,
    running: AtomicU64,
    /// Signalled when an invocation leaves or the limit changes.
    left: Notify,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            limit: AtomicU64::new(UNLIMITED),
            running: AtomicU64::new(0),
            left: Notify::new(),
        }
    }
}

/// One invocation inside the gate; leaving is dropping it.
#[derive(Debug)]
pub(super) struct GatePass(Arc<Gate>);

impl Drop for GatePass {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        self.0.left.notify_one();
    }
}

impl Gate {
    fn try_enter(self: &Arc<Gate>) -> Option<GatePass> {
        let before = self.running.fetch_add(1, Ordering::AcqRel);
        if before < self.limit.load(Ordering::Acquire) {
            return Some(GatePass(self.clone()));
        }
        self.running.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// Enters, waiting at most `wait` for a running invocation to leave.
    /// `Err` carries the limit that stood in the way.
    pub(super) async fn enter(self: &Arc<Gate>, wait: Duration) -> Result<GatePass, u64> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before trying, so a leave in between still wakes us.
            let left = self.left.notified();
            if let Some(pass) = self.try_enter() {
                return Ok(pass);
            }
            tokio::select! {
                _ = left => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return self.try_enter().ok_or_else(|| self.limit.load(Ordering::Acquire));
                }
            }
        }
    }

    fn set_limit(&self, limit: Option<u64>) {
        self.limit.store(limit.unwrap_or(UNLIMITED), Ordering::Release);
        self.left.notify_waiters();
    }
}

impl Pool {
    /// The gate of `service/function`, made on first use.
    pub(super) fn gate(&self, service: &str, function: &str) -> Arc<Gate> {
        let key = (service.to_string(), function.to_string());
        self.inner.gates.entry(key).or_default().clone()
    }

    /// Sets (or with `None` lifts) a function's reserved concurrency.
    pub fn set_reserved_concurrency(&self, service: &str, function: &str, limit: Option<u64>) {
        self.gate(service, function).set_limit(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_bounds_who_is_inside_and_a_leave_lets_the_next_in() {
        let gate = Arc::new(Gate::default());
        gate.set_limit(Some(1));
        let first = gate.enter(Duration::ZERO).await.expect("room for one");
        assert_eq!(gate.enter(Duration::from_millis(10)).await.err(), Some(1));
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(Duration::from_secs(30)).await.is_ok() }
        });
        drop(first);
        assert!(waiting.await.unwrap(), "a waiter enters once the first leaves");
        gate.set_limit(Some(0));
        assert!(gate.enter(Duration::ZERO).await.is_err(), "0 lets nobody in");
        gate.set_limit(None);
        assert!(gate.enter(Duration::ZERO).await.is_ok());
    }
}
