//! What the registry announces after a change has been persisted, so that
//! the modules that hold state derived from it (the pool's instances, the
//! scheduler's queue) react in one place (`cli::serve`'s wiring) instead of
//! every HTTP handler doing it by hand.

use tokio::sync::broadcast;

/// One persisted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A function's LATEST settings or code changed (or it was created);
    /// `revision` is the LATEST now in force (`FunctionEntry::revision`).
    /// Published versions are snapshots and do not change with it.
    FunctionChanged {
        service: String,
        function: String,
        revision: u64,
    },
    /// A function is gone, with every version of it.
    FunctionDeleted { service: String, function: String },
    /// The whole registry was reloaded from a shared store (another node
    /// changed it): per-function settings held elsewhere (reserved
    /// concurrency) are to be read again.
    Reloaded,
}

/// Announcements queued for a slow subscriber before it lags; a lagging
/// subscriber is told so and must assume anything changed.
const CAPACITY: usize = 1024;

pub(super) fn channel() -> broadcast::Sender<RegistryEvent> {
    broadcast::channel(CAPACITY).0
}
