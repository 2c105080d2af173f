//! The log budget's reads and drops on SQLite (see [`LogBudget`]).

use rusqlite::{Connection, params};

use super::super::DROPPED_LOG_MARKER;
use super::super::Result;
use super::super::log_budget::{LogBudget, PRUNE_BATCH};

/// The log bytes the tasks of `c` hold (one scan, at open and after a purge).
pub fn measure(c: &Connection) -> Result<u64> {
    let total: f64 = c.query_row(
        "SELECT total(length(logs)) FROM tasks WHERE logs IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(total as u64)
}

/// Accounts for task `seq`'s log becoming `new_len` bytes (it was whatever
/// the row holds now). Called inside the writing transaction, before the
/// update.
pub fn replace(budget: &LogBudget, c: &Connection, seq: i64, new_len: usize) -> Result<()> {
    let old: i64 = c
        .prepare_cached("SELECT ifnull(length(logs), 0) FROM tasks WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))?;
    budget.replaced(old as u64, new_len as u64);
    Ok(())
}

/// Drops the oldest logs while the total is over the budget, down to 90 %
/// of it; answers how many tasks' logs were dropped.
pub fn prune(budget: &LogBudget, c: &Connection) -> Result<usize> {
    let Some(target) = budget.prune_target() else {
        return Ok(0);
    };
    let mut dropped = 0;
    while budget.used() > target {
        let batch: Vec<(i64, i64)> = c
            .prepare_cached(
                "SELECT seq, length(logs) FROM tasks WHERE seq > ?1 AND logs IS NOT NULL AND logs != ?2
                 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![budget.pruned_upto(), DROPPED_LOG_MARKER, PRUNE_BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if batch.is_empty() {
            break;
        }
        let mut update = c.prepare_cached("UPDATE tasks SET logs = ?2 WHERE seq = ?1")?;
        for (seq, len) in batch {
            if budget.used() <= target {
                break;
            }
            update.execute(params![seq, DROPPED_LOG_MARKER])?;
            budget.dropped(seq, len as u64);
            dropped += 1;
        }
    }
    budget.report(dropped);
    Ok(dropped)
}
