//! Task leases: how nodes sharing one PostgreSQL divide the queue.
//!
//! A node claims due tasks in batches (`FOR UPDATE SKIP LOCKED`, so
//! concurrent claimers pass over each other's rows instead of waiting),
//! one queue partition at a time. Each claim sets the task's lease — the
//! owner node, an expiry, and a fresh fencing token from the
//! `lease_tokens` sequence — and the owner renews it while the guest runs.
//! When a lease lapses (its node died or lost the database),
//! [`expire_leases`] puts the task back: a `Running` task becomes
//! `Retrying` with a history event naming the lost lease, a `Dequeued` one
//! stays `Dequeued`; either is claimable again, under a new token. The old
//! owner's transitions carry the old token and are refused
//! ([`super::Fence`]), so a task never ends `Succeeded` twice.

use tokio_postgres::Client;

use super::super::{Result, TaskRow};
use super::tasks::{COLUMNS, append_event, row_from};
use crate::tasks::TaskState;

/// A claimed task: its row (with payload) and the claim's fencing token.
#[derive(Debug, Clone)]
pub struct Claim {
    pub row: TaskRow,
    pub token: i64,
}

/// Claims up to `limit` due tasks of queue partition `queue` for `node`,
/// leased until `now_ms + lease_ms`. An `Enqueued` task becomes `Dequeued`
/// (with its history event); a `Dequeued` or `Retrying` one keeps its state
/// under the new lease.
pub async fn claim_due(
    client: &mut Client,
    node: &str,
    queue: i16,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Claim>> {
    let tx = client.transaction().await?;
    let sql = format!(
        "WITH due AS (
             SELECT seq AS due_seq, status AS before FROM tasks
             WHERE queue = $1 AND end_ms = 0 AND lease_owner IS NULL AND next_run_ms <= $2
               AND status IN ('Enqueued', 'Dequeued', 'Retrying')
             ORDER BY next_run_ms, seq
             LIMIT $3
             FOR UPDATE SKIP LOCKED)
         UPDATE tasks t SET
             lease_owner = $4,
             lease_until_ms = $2 + $5,
             lease_token = nextval('lease_tokens'),
             status = CASE WHEN t.status = 'Enqueued' THEN 'Dequeued' ELSE t.status END,
             events = CASE WHEN t.status = 'Enqueued' THEN t.events + 1 ELSE t.events END
         FROM due WHERE t.seq = due.due_seq
         RETURNING {COLUMNS}, payload, events, before"
    );
    let rows = tx.query(&sql, &[&queue, &now_ms, &limit, &node, &lease_ms]).await?;
    let mut claims = Vec::with_capacity(rows.len());
    for r in &rows {
        let (row, token) = row_from(r, true);
        let before: String = r.get(22);
        if before == TaskState::Enqueued.as_str() {
            let event_id: i32 = r.get(21);
            append_event(
                &tx,
                row.seq,
                event_id,
                TaskState::Dequeued,
                now_ms,
                &format!("claimed by {node}"),
            )
            .await?;
        }
        claims.push(Claim { row, token });
    }
    tx.commit().await?;
    Ok(claims)
}

/// Extends the leases `node` holds under `tokens` to `until_ms`; answers the
/// seqs still held (a task missing from the answer was lost: stop its guest).
pub async fn renew_leases(client: &Client, node: &str, tokens: &[i64], until_ms: i64) -> Result<Vec<i64>> {
    let rows = client
        .query(
            "UPDATE tasks SET lease_until_ms = $3
             WHERE lease_token = ANY($2) AND lease_owner = $1 AND end_ms = 0
             RETURNING seq",
            &[&node, &tokens, &until_ms],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Puts back every task whose lease lapsed before `now_ms`; answers their
/// seqs. A `Running` task becomes `Retrying`, due at once, with a history
/// event naming the node whose lease expired.
pub async fn expire_leases(client: &mut Client, now_ms: i64, limit: i64) -> Result<Vec<i64>> {
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "WITH lapsed AS (
                 SELECT seq, status AS before, lease_owner AS owner FROM tasks
                 WHERE end_ms = 0 AND lease_owner IS NOT NULL AND lease_until_ms < $1
                 ORDER BY lease_until_ms
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             UPDATE tasks t SET
                 status = CASE WHEN t.status = 'Running' THEN 'Retrying' ELSE t.status END,
                 events = CASE WHEN t.status = 'Running' THEN t.events + 1 ELSE t.events END,
                 next_run_ms = $1,
                 lease_owner = NULL,
                 lease_until_ms = 0
             FROM lapsed WHERE t.seq = lapsed.seq
             RETURNING t.seq, t.events, lapsed.before, lapsed.owner",
            &[&now_ms, &limit],
        )
        .await?;
    let mut seqs = Vec::with_capacity(rows.len());
    for r in &rows {
        let seq: i64 = r.get(0);
        let before: String = r.get(2);
        if before == TaskState::Running.as_str() {
            let owner: Option<String> = r.get(3);
            let detail = format!("the lease of node {} expired", owner.unwrap_or_default());
            append_event(&tx, seq, r.get(1), TaskState::Retrying, now_ms, &detail).await?;
        }
        seqs.push(seq);
    }
    tx.commit().await?;
    Ok(seqs)
}
