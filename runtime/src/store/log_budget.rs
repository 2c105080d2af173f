//! The total budget of stored task logs.
//!
//! Each attempt's log is capped where it is captured (`--log-limit-bytes`),
//! but tasks are many: without a total, a function that logs its limit on
//! every task fills the disk before retention purges anything. The store
//! keeps a running total of the log bytes it holds and, when a write takes
//! it over the budget, drops the oldest tasks' logs first (each replaced by
//! a one-line marker that says why) until the total is back under 90 % of
//! the budget. Results, payloads and history are never dropped this way.
//!
//! This is the accounting; each store reads lengths and drops logs in its
//! own SQL. On a shared store each node counts the writes it makes and is
//! re-measured after every purge, so the total is a node's estimate there.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Tasks whose logs one pruning query drops at most.
pub(super) const PRUNE_BATCH: i64 = 256;

#[derive(Debug)]
pub struct LogBudget {
    limit: AtomicU64,
    used: AtomicU64,
    /// Tasks up to this seq have had their logs dropped already, so pruning
    /// does not scan them again.
    pruned_upto: AtomicI64,
}

impl LogBudget {
    /// The budget of a store whose tasks hold `used` log bytes now.
    pub fn new(limit: u64, used: u64) -> LogBudget {
        LogBudget {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(used),
            pruned_upto: AtomicI64::new(0),
        }
    }

    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn reset_used(&self, used: u64) {
        self.used.store(used, Ordering::Relaxed);
    }

    /// Accounts for a task's log going from `old_len` to `new_len` bytes.
    pub fn replaced(&self, old_len: u64, new_len: u64) {
        let used = self.used().saturating_sub(old_len) + new_len;
        self.used.store(used, Ordering::Relaxed);
    }

    /// The total to prune down to, when the budget is exceeded.
    pub fn prune_target(&self) -> Option<u64> {
        let limit = self.limit.load(Ordering::Relaxed);
        (self.used() > limit).then_some(limit / 10 * 9)
    }

    /// Where the next pruning scan starts (tasks up to it are done).
    pub fn pruned_upto(&self) -> i64 {
        self.pruned_upto.load(Ordering::Relaxed)
    }

    /// Accounts for task `seq`'s log of `len` bytes having been dropped.
    pub fn dropped(&self, seq: i64, len: u64) {
        self.used.store(self.used().saturating_sub(len), Ordering::Relaxed);
        self.pruned_upto.store(seq, Ordering::Relaxed);
    }

    /// Logs that pruning dropped `count` logs.
    pub fn report(&self, count: usize) {
        if count > 0 {
            tracing::info!(
                dropped = count,
                used = self.used(),
                limit = self.limit.load(Ordering::Relaxed),
                "dropped the oldest task logs to stay within the log budget"
            );
        }
    }
}
