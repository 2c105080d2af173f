//! Giving capacity back: idle instances reaped after the idle timeout,
//! the least recently used idle instance evicted when the global cap is
//! reached, and a function's instances released when it changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Pool;
use super::slots::FunctionPool;

impl Pool {
    /// Drops the least recently used non-provisioned idle instance.
    pub(super) fn evict_one_idle(&self) -> bool {
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

    /// Drops idle instances of one function (it was updated or deleted).
    pub fn release_function(&self, service: &str, function: &str) {
        self.inner.gates.remove(&(service.to_string(), function.to_string()));
        self.inner
            .functions
            .retain(|k, _| !(k.service == service && k.function == function));
    }

    /// Drops the instances of a function's earlier LATESTs: every LATEST
    /// key but the revision in force, so an announcement handled late never
    /// drops instances of the current code. Published versions (and the
    /// provisioned instances behind their aliases) are snapshots that a
    /// change of LATEST does not touch.
    pub fn release_stale_latest(&self, service: &str, function: &str, revision: u64) {
        self.inner.functions.retain(|k, _| {
            let stale_latest =
                k.service == service && k.function == function && k.version.is_none() && k.revision != revision;
            !stale_latest
        });
    }

    pub(super) fn spawn_reaper(&self) {
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
