//! The pool's view of its live instances, for FC's ListInstances and the
//! console: which instances a function has, idle or busy, what each is
//! running, and recycling one.
//!
//! Every slot carries a [`Tracked`] record registered in its function
//! pool's [`LiveMap`] while the instance lives; dropping the slot (or, for
//! an HTTP instance, the hold its guest runs under) removes it. The warm
//! path touches the record with a few relaxed stores and one short lock to
//! rewrite the current request id in place, so listing costs the listing,
//! not every invocation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::engine::InvocationContext;

/// The live instances of one function pool, by instance id.
pub(super) type LiveMap = Mutex<HashMap<String, Arc<LiveRecord>>>;

/// What the pool knows of one live instance.
#[derive(Debug)]
pub(super) struct LiveRecord {
    id: String,
    created: Instant,
    created_ms: i64,
    provisioned: bool,
    invocations: AtomicU64,
    busy: AtomicBool,
    /// The task id or request id it runs now (empty when idle).
    current: Mutex<String>,
    memory_bytes: AtomicUsize,
    /// Recycle asked: the instance is dropped instead of going back idle.
    pub(super) recycle: AtomicBool,
}

impl LiveRecord {
    /// Marks the instance busy with `ctx`'s task (or request).
    pub(super) fn begin(&self, ctx: &InvocationContext) {
        self.busy.store(true, Ordering::Relaxed);
        let mut current = self.current.lock();
        current.clear();
        current.push_str(ctx.task_id.as_deref().unwrap_or(&ctx.request_id));
    }

    /// Counts a finished invocation and the memory the instance holds.
    pub(super) fn served(&self, memory_bytes: usize) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        if memory_bytes > 0 {
            self.memory_bytes.store(memory_bytes, Ordering::Relaxed);
        }
    }

    /// Marks the instance idle again.
    pub(super) fn idle(&self) {
        self.busy.store(false, Ordering::Relaxed);
        self.current.lock().clear();
    }

    pub(super) fn id(&self) -> &str {
        &self.id
    }
}

/// A slot's registration in its pool's live map, removed when dropped.
pub(super) struct Tracked {
    pub(super) record: Arc<LiveRecord>,
    map: Arc<LiveMap>,
}

impl Tracked {
    pub(super) fn register(map: &Arc<LiveMap>, id: &str, provisioned: bool, memory_bytes: usize) -> Tracked {
        let record = Arc::new(LiveRecord {
            id: id.to_string(),
            created: Instant::now(),
            created_ms: crate::util::now_ms(),
            provisioned,
            invocations: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            current: Mutex::new(String::new()),
            memory_bytes: AtomicUsize::new(memory_bytes),
            recycle: AtomicBool::new(false),
        });
        map.lock().insert(record.id.clone(), record.clone());
        Tracked {
            record,
            map: map.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.map.lock().remove(&self.record.id);
    }
}

/// One live instance as ListInstances reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceInfo {
    pub instance_id: String,
    /// The published version it runs; `None` for LATEST.
    pub version: Option<u64>,
    pub provisioned: bool,
    pub busy: bool,
    /// The task id or request id it runs now (empty when idle).
    pub current: String,
    pub memory_bytes: usize,
    pub memory_limit_bytes: u64,
    pub created_ms: i64,
    pub age: Duration,
    pub invocations: u64,
    pub recycling: bool,
}

impl InstanceInfo {
    pub(super) fn of(record: &LiveRecord, version: Option<u64>, memory_limit_mb: u64) -> InstanceInfo {
        InstanceInfo {
            instance_id: record.id.clone(),
            version,
            provisioned: record.provisioned,
            busy: record.busy.load(Ordering::Relaxed),
            current: record.current.lock().clone(),
            memory_bytes: record.memory_bytes.load(Ordering::Relaxed),
            memory_limit_bytes: memory_limit_mb << 20,
            created_ms: record.created_ms,
            age: record.created.elapsed(),
            invocations: record.invocations.load(Ordering::Relaxed),
            recycling: record.recycle.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_lives_as_long_as_its_slot_and_reports_its_work() {
        let map: Arc<LiveMap> = Arc::default();
        let tracked = Tracked::register(&map, "i-1", false, 65536);
        assert_eq!(map.lock().len(), 1);
        let ctx = InvocationContext::request("req-1".into(), Default::default(), Duration::from_secs(1));
        tracked.record.begin(&ctx);
        let busy = InstanceInfo::of(&tracked.record, Some(2), 128);
        assert!(busy.busy);
        assert_eq!(busy.current, "req-1");
        assert_eq!(busy.memory_limit_bytes, 128 << 20);
        tracked.record.served(131072);
        tracked.record.idle();
        let idle = InstanceInfo::of(&tracked.record, Some(2), 128);
        assert!(!idle.busy);
        assert_eq!(idle.current, "");
        assert_eq!(idle.invocations, 1);
        assert_eq!(idle.memory_bytes, 131072);
        drop(tracked);
        assert!(map.lock().is_empty());
    }
}
