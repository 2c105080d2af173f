//! Provisioned instances: bringing a function version to its target, and
//! reading how many live and serve (the accounting itself is in `slots`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::key::KeyFields;
use super::slots::{FunctionPool, ProvisionedMark, Slot};
use super::{Pool, PoolKey};
use crate::engine::InvocationContext;
use crate::registry::ResolvedFunction;

impl Pool {
    /// Brings the provisioned instances of `resolved` to `target`: creates
    /// the missing ones (initializer run, ready for a provisioned start)
    /// and retires idle ones above it (busy ones retire when they return).
    /// Answers how many live now, and why it fell short, if it did.
    pub async fn provision(&self, resolved: &ResolvedFunction, target: u64) -> (u64, Option<String>) {
        let fp = self.function_pool(resolved);
        fp.provisioned.target.store(target, Ordering::Relaxed);
        self.retire_excess(&fp);
        while fp.provisioned.live.load(Ordering::Relaxed) < target {
            let Ok(function) = fp.permits.clone().try_acquire_owned() else {
                return (
                    fp.provisioned.live.load(Ordering::Relaxed),
                    Some("the per-function instance limit is reached".into()),
                );
            };
            let deadline = tokio::time::Instant::now() + self.inner.config.acquire_timeout;
            let Some(global) = self.reserve_global(deadline).await else {
                return (
                    fp.provisioned.live.load(Ordering::Relaxed),
                    Some("the global instance limit is reached".into()),
                );
            };
            let spec = &resolved.function.spec;
            let ctx = InvocationContext::request(
                format!("provision-{}", uuid::Uuid::new_v4()),
                resolved.target(),
                Duration::from_secs(spec.timeout_s),
            );
            let instance = match self.create(&fp, &ctx).await {
                Ok(i) => i,
                Err(e) => return (fp.provisioned.live.load(Ordering::Relaxed), Some(e.to_string())),
            };
            fp.provisioned.live.fetch_add(1, Ordering::Relaxed);
            let mark = ProvisionedMark(fp.provisioned.clone());
            fp.give_back(Slot::new(&fp, instance, Some(mark), global, function));
        }
        (fp.provisioned.live.load(Ordering::Relaxed), None)
    }

    pub(super) fn retire_excess(&self, fp: &FunctionPool) {
        let target = fp.provisioned.target.load(Ordering::Relaxed);
        let mut idle = fp.idle.lock();
        while fp.provisioned.live.load(Ordering::Relaxed) > target {
            match idle.iter().position(|i| i.slot.is_provisioned()) {
                // Dropping the slot decrements `live`.
                Some(at) => drop(idle.swap_remove(at)),
                None => break,
            }
        }
    }

    /// Provisioned instances of `resolved`: (live, busy).
    pub fn provisioned(&self, resolved: &ResolvedFunction) -> (u64, u64) {
        match self.inner.functions.get(resolved as &dyn KeyFields) {
            Some(fp) => (
                fp.provisioned.live.load(Ordering::Relaxed),
                fp.provisioned.busy.load(Ordering::Relaxed),
            ),
            None => (0, 0),
        }
    }

    /// Releases every provisioned instance of one pool key (its config was
    /// deleted or now resolves elsewhere).
    pub fn unprovision(&self, key: &PoolKey) {
        if let Some(fp) = self.inner.functions.get(key).map(|f| f.clone()) {
            fp.provisioned.target.store(0, Ordering::Relaxed);
            self.retire_excess(&fp);
        }
    }

    /// Provisioned instances alive across all functions: (live, busy).
    pub fn provisioned_totals(&self) -> (u64, u64) {
        self.inner.functions.iter().fold((0, 0), |(l, b), fp| {
            (
                l + fp.provisioned.live.load(Ordering::Relaxed),
                b + fp.provisioned.busy.load(Ordering::Relaxed),
            )
        })
    }
}
