//! What the pool holds per function version: slots (an instance with the
//! capacity it holds), the idle stack, the provisioned accounting, and
//! giving an instance back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::live::{LiveMap, Tracked};
use crate::engine::{GuestInstance, InstanceSettings};
use crate::registry::FunctionEntry;

/// Provisioned instances of one function version: how many should live,
/// how many do, and how many are serving right now (for target tracking).
#[derive(Debug, Default)]
pub(super) struct Provisioned {
    pub(super) target: AtomicU64,
    pub(super) live: AtomicU64,
    pub(super) busy: AtomicU64,
}

/// Marks a slot as provisioned; counts it live until it is dropped, so a
/// provisioned instance that traps or is retired is replaced by the
/// autoscaler's next round.
pub(super) struct ProvisionedMark(pub(super) Arc<Provisioned>);

impl Drop for ProvisionedMark {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a provisioned instance busy while a lease holds it.
pub(super) struct BusyMark(pub(super) Arc<Provisioned>);

impl Drop for BusyMark {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An instance with the capacity it holds.
pub(super) struct Slot {
    pub(super) instance: GuestInstance,
    pub(super) uses: u64,
    pub(super) provisioned: Option<ProvisionedMark>,
    /// Its entry in the pool's live instances (ListInstances).
    pub(super) tracked: Tracked,
    pub(super) _global: OwnedSemaphorePermit,
    pub(super) _function: OwnedSemaphorePermit,
}

impl Slot {
    /// A new instance's slot, registered among `fp`'s live instances.
    pub(super) fn new(
        fp: &FunctionPool,
        instance: GuestInstance,
        provisioned: Option<ProvisionedMark>,
        global: OwnedSemaphorePermit,
        function: OwnedSemaphorePermit,
    ) -> Slot {
        let tracked = Tracked::register(&fp.live, instance.id(), provisioned.is_some(), instance.memory_bytes());
        Slot {
            instance,
            uses: 0,
            provisioned,
            tracked,
            _global: global,
            _function: function,
        }
    }

    pub(super) fn is_provisioned(&self) -> bool {
        self.provisioned.is_some()
    }
}

pub(super) struct IdleSlot {
    pub(super) slot: Slot,
    pub(super) since: Instant,
}

pub(super) struct FunctionPool {
    /// The function's reserved-concurrency gate (shared by its versions).
    pub(super) gate: Arc<super::reserved::Gate>,
    pub(super) entry: Arc<FunctionEntry>,
    /// `service/function`, the metrics label of its invocations.
    pub(super) label: String,
    pub(super) settings: Arc<InstanceSettings>,
    pub(super) idle: Mutex<Vec<IdleSlot>>,
    pub(super) permits: Arc<Semaphore>,
    /// Signalled when an instance goes back to `idle`.
    pub(super) returned: Notify,
    pub(super) provisioned: Arc<Provisioned>,
    /// Its live instances, idle and busy.
    pub(super) live: Arc<LiveMap>,
}

impl FunctionPool {
    /// Returns an instance to the idle set and wakes one waiter. A
    /// provisioned instance above the current target retires instead.
    pub(super) fn give_back(&self, slot: Slot) {
        slot.tracked.record.idle();
        if slot.tracked.record.recycle.load(Ordering::Relaxed) {
            return;
        }
        if slot.is_provisioned()
            && self.provisioned.live.load(Ordering::Relaxed) > self.provisioned.target.load(Ordering::Relaxed)
        {
            return;
        }
        self.idle.lock().push(IdleSlot {
            slot,
            since: Instant::now(),
        });
        self.returned.notify_one();
    }
}
