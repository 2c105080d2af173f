//! The task change feed: every task insert and state change, published
//! after the commit that made it durable.
//!
//! Writes note their changes as they run on the writer thread; the writer
//! publishes a batch's notes only once the batch has committed (and drops
//! the notes of a job whose savepoint rolled back), so a listener never
//! hears of a state that a reader could not see yet. The console's live
//! views are the listener. A listener that falls behind the channel's
//! capacity is told it lagged (tokio's broadcast), and re-reads.

use std::cell::RefCell;

use tokio::sync::broadcast;

use crate::tasks::TaskState;

/// How many changes a slow listener may fall behind before it lags.
pub const CAPACITY: usize = 8192;

/// One task's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChange {
    pub seq: i64,
    pub service: String,
    pub function: String,
    pub invocation_id: String,
    pub status: TaskState,
    /// Whether the task is visible through the task API (task mode).
    pub stateful: bool,
}

thread_local! {
    /// Changes of the writer thread's current batch, not yet committed.
    static PENDING: RefCell<Vec<TaskChange>> = const { RefCell::new(Vec::new()) };
}

/// Notes a change made by the running write (writer thread only).
pub(super) fn note(change: TaskChange) {
    PENDING.with(|p| p.borrow_mut().push(change));
}

/// How many changes are noted so far: a job's mark, to drop its notes if
/// its savepoint rolls back.
pub(super) fn mark() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// Drops the notes made after `mark` (their job rolled back).
pub(super) fn rollback_to(mark: usize) {
    PENDING.with(|p| p.borrow_mut().truncate(mark));
}

/// Publishes the batch's notes when it committed, drops them when not.
pub(super) fn finish_batch(committed: bool, feed: &broadcast::Sender<TaskChange>) {
    let notes = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if committed && feed.receiver_count() > 0 {
        for change in notes {
            let _ = feed.send(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64) -> TaskChange {
        TaskChange {
            seq,
            service: "s".into(),
            function: "f".into(),
            invocation_id: format!("t{seq}"),
            status: TaskState::Enqueued,
            stateful: true,
        }
    }

    #[test]
    fn only_committed_changes_of_jobs_that_held_are_published() {
        let (feed, mut rx) = broadcast::channel(16);
        note(change(1));
        let m = mark();
        note(change(2));
        rollback_to(m);
        note(change(3));
        finish_batch(true, &feed);
        assert_eq!(rx.try_recv().map(|c| c.seq), Ok(1));
        assert_eq!(rx.try_recv().map(|c| c.seq), Ok(3));
        assert!(rx.try_recv().is_err());

        note(change(4));
        finish_batch(false, &feed);
        note(change(5));
        finish_batch(true, &feed);
        assert_eq!(
            rx.try_recv().map(|c| c.seq),
            Ok(5),
            "a failed batch's notes are dropped"
        );
    }
}
