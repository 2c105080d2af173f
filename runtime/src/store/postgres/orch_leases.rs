//! Orchestration instance leases: an instance's replay runs on one node at
//! a time, cluster-wide.
//!
//! A node takes an instance's lease before a run and gives it back after
//! (or keeps renewing it while runs follow one another). Whatever arrives
//! meanwhile — an activity result, an event, a timer, from any node — sets
//! the instance's `pending` flag in the transaction that records it; the
//! release answers that flag, so the holder runs again instead of leaving
//! the news unread. An instance whose lease lapsed with news pending (its
//! node died) is an orphan, found by every node's sweep. A run's commit
//! carries the lease token it ran under, so a node that lost the lease
//! cannot commit over the one that took it.

use super::super::{Result, TimerRow};
use super::PgStore;

impl PgStore {
    /// Takes the lease of instance `rid` for `node` until `now_ms +
    /// lease_ms`, unless another node holds it; answers the token.
    pub async fn orch_acquire(&self, rid: i64, node: &str, now_ms: i64, lease_ms: i64) -> Result<Option<i64>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE orchestrations SET lease_owner = $2, lease_until_ms = $3 + $4,
                     lease_token = nextval('lease_tokens')
                 WHERE rid = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until_ms < $3)
                 RETURNING lease_token",
                &[&rid, &node, &now_ms, &lease_ms],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Gives the lease held under `token` back; answers whether news
    /// arrived that no run has seen (the caller then runs again).
    pub async fn orch_release(&self, rid: i64, token: i64) -> Result<bool> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE orchestrations SET lease_owner = NULL, lease_until_ms = 0
                 WHERE rid = $1 AND lease_token = $2
                 RETURNING pending AND status IN ('Pending', 'Running', 'ContinuedAsNew')",
                &[&rid, &token],
            )
            .await?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    /// Extends the instance leases `node` holds under `tokens`.
    pub async fn orch_renew(&self, node: &str, tokens: &[i64], until_ms: i64) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE orchestrations SET lease_until_ms = $3 WHERE lease_token = ANY($2) AND lease_owner = $1",
                &[&node, &tokens, &until_ms],
            )
            .await?;
        Ok(())
    }

    /// Instances with news pending and no live lease (their node died, or
    /// the wake-up was lost): up to `limit`.
    pub async fn orch_orphans(&self, now_ms: i64, limit: i64) -> Result<Vec<i64>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT rid FROM orchestrations
                 WHERE pending AND status IN ('Pending', 'Running', 'ContinuedAsNew')
                   AND (lease_owner IS NULL OR lease_until_ms < $1)
                 ORDER BY rid LIMIT $2",
                &[&now_ms, &limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Timers due by `until_ms`, whichever node armed them: up to `limit`.
    pub async fn orch_due_timers(&self, until_ms: i64, limit: i64) -> Result<Vec<TimerRow>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT fire_ms, rid, generation, step FROM orchestration_timers
                 WHERE fire_ms <= $1 ORDER BY fire_ms LIMIT $2",
                &[&until_ms, &limit],
            )
            .await?;
        Ok(rows.iter().map(timer_from).collect())
    }
}

/// A timer row as selected: `fire_ms, rid, generation, step`.
pub(super) fn timer_from(r: &tokio_postgres::Row) -> TimerRow {
    TimerRow {
        fire_ms: r.get(0),
        rid: r.get(1),
        generation: r.get::<_, i32>(2).max(0) as u32,
        step: r.get::<_, i64>(3).max(0) as u32,
    }
}
