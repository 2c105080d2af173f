//! The log budget's reads and drops on PostgreSQL (see [`LogBudget`]).

use tokio_postgres::GenericClient;

use super::super::log_budget::{LogBudget, PRUNE_BATCH};
use super::super::{DROPPED_LOG_MARKER, Result};

/// The log bytes the tasks hold (at open and after a purge).
pub(super) async fn measure_logs(client: &impl GenericClient) -> Result<u64> {
    let total: i64 = client
        .query_one(
            "SELECT COALESCE(SUM(octet_length(logs)), 0)::BIGINT FROM tasks WHERE logs IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    Ok(total.max(0) as u64)
}

/// Drops the oldest logs while the budget is exceeded (see [`LogBudget`]).
pub(super) async fn prune_logs(client: &impl GenericClient, budget: &LogBudget) -> Result<()> {
    let Some(target) = budget.prune_target() else {
        return Ok(());
    };
    let mut dropped = 0;
    while budget.used() > target {
        let batch = client
            .query(
                "SELECT seq, octet_length(logs) FROM tasks WHERE seq > $1 AND logs IS NOT NULL AND logs <> $2
                 ORDER BY seq LIMIT $3",
                &[&budget.pruned_upto(), &DROPPED_LOG_MARKER, &PRUNE_BATCH],
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        for r in batch {
            if budget.used() <= target {
                break;
            }
            let (seq, len): (i64, i32) = (r.get(0), r.get(1));
            client
                .execute(
                    "UPDATE tasks SET logs = $2 WHERE seq = $1",
                    &[&seq, &DROPPED_LOG_MARKER],
                )
                .await?;
            budget.dropped(seq, len.max(0) as u64);
            dropped += 1;
        }
    }
    budget.report(dropped);
    Ok(())
}
