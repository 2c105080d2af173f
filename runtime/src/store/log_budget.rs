//! The total budget of stored task logs.
//!
//! Each attempt's log is capped where it is captured (`--log-limit-bytes`),
//! but tasks are many: without a total, a function that logs its limit on
//! every task fills the disk before retention purges anything. The store
//! keeps a running total of the log bytes it holds and, when a write takes
//! it over the budget, drops the oldest tasks' logs first (each replaced by
//! a one-line marker that says why) until the total is back under 90 % of
//! the budget. Results, payloads and history are never dropped this way.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rusqlite::{Connection, params};

use super::Result;

/// What a dropped log reads as.
pub const DROPPED_MARKER: &[u8] =
    b"[wasmfc: this log was dropped to keep the stored task logs within --task-log-budget-mb]\n";

/// Tasks whose logs one pruning query drops at most.
const PRUNE_BATCH: i64 = 256;

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

    /// The log bytes the tasks of `c` hold (one scan, at open and after a purge).
    pub fn measure(c: &Connection) -> Result<u64> {
        let total: f64 = c.query_row(
            "SELECT total(length(logs)) FROM tasks WHERE logs IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(total as u64)
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

    /// Accounts for task `seq`'s log becoming `new_len` bytes (it was
    /// whatever the row holds now). Called inside the writing transaction,
    /// before the update.
    pub fn replace(&self, c: &Connection, seq: i64, new_len: usize) -> Result<()> {
        let old: i64 = c
            .prepare_cached("SELECT ifnull(length(logs), 0) FROM tasks WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))?;
        let used = self.used().saturating_sub(old as u64) + new_len as u64;
        self.used.store(used, Ordering::Relaxed);
        Ok(())
    }

    /// Drops the oldest logs while the total is over the budget, down to
    /// 90 % of it; answers how many tasks' logs were dropped.
    pub fn prune(&self, c: &Connection) -> Result<usize> {
        let limit = self.limit.load(Ordering::Relaxed);
        if self.used() <= limit {
            return Ok(0);
        }
        let target = limit / 10 * 9;
        let mut dropped = 0;
        while self.used() > target {
            let from = self.pruned_upto.load(Ordering::Relaxed);
            let batch: Vec<(i64, i64)> = c
                .prepare_cached(
                    "SELECT seq, length(logs) FROM tasks WHERE seq > ?1 AND logs IS NOT NULL AND logs != ?2
                     ORDER BY seq LIMIT ?3",
                )?
                .query_map(params![from, DROPPED_MARKER, PRUNE_BATCH], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            if batch.is_empty() {
                break;
            }
            let mut update = c.prepare_cached("UPDATE tasks SET logs = ?2 WHERE seq = ?1")?;
            for (seq, len) in batch {
                if self.used() <= target {
                    break;
                }
                update.execute(params![seq, DROPPED_MARKER])?;
                self.used
                    .store(self.used().saturating_sub(len as u64), Ordering::Relaxed);
                self.pruned_upto.store(seq, Ordering::Relaxed);
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::info!(
                dropped,
                used = self.used(),
                limit,
                "dropped the oldest task logs to stay within the log budget"
            );
        }
        Ok(dropped)
    }
}
