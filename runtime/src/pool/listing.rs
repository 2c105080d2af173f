//! Reading a function's live instances (FC's ListInstances) and recycling
//! one: an idle instance is dropped at once, a busy one after its call.

use std::sync::atomic::Ordering;

use super::Pool;
use super::live::InstanceInfo;

impl Pool {
    /// The live instances of `service/function`, every version and revision,
    /// oldest first.
    pub fn instances(&self, service: &str, function: &str) -> Vec<InstanceInfo> {
        let mut out = Vec::new();
        for fp in self.inner.functions.iter() {
            let key = fp.key();
            if key.service != service || key.function != function {
                continue;
            }
            let limit_mb = fp.settings.memory_limit_mb;
            let records: Vec<_> = fp.live.lock().values().cloned().collect();
            out.extend(records.iter().map(|r| InstanceInfo::of(r, key.version, limit_mb)));
        }
        out.sort_by(|a, b| (a.created_ms, &a.instance_id).cmp(&(b.created_ms, &b.instance_id)));
        out
    }

    /// Marks an instance of `service/function` to be dropped instead of
    /// serving again; an idle one goes at once. Answers whether the
    /// instance was found.
    pub fn recycle(&self, service: &str, function: &str, instance_id: &str) -> bool {
        for fp in self.inner.functions.iter() {
            let key = fp.key();
            if key.service != service || key.function != function {
                continue;
            }
            let Some(record) = fp.live.lock().get(instance_id).cloned() else {
                continue;
            };
            record.recycle.store(true, Ordering::Relaxed);
            let idle = {
                let mut idle = fp.idle.lock();
                idle.iter()
                    .position(|i| i.slot.tracked.record.id() == instance_id)
                    .map(|at| idle.swap_remove(at))
            };
            if let Some(idle) = idle {
                super::lease::discard(idle.slot, None);
            }
            return true;
        }
        false
    }
}
