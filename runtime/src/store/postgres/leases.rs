//! Task leases: how nodes sharing one PostgreSQL divide the queue.
//!
//! A node claims due tasks in batches (`FOR UPDATE SKIP LOCKED`, so
//! concurrent claimers pass over each other's rows instead of waiting),
//! one queue partition at a time, starting from a partition of its own so
//! that nodes do not all begin at the same rows. A claim sets the task's
//! lease — the owner node, an expiry, and a fresh fencing token from the
//! `lease_tokens` sequence — and leaves its state alone: the node then
//! moves it through the same transitions as the embedded store, each
//! carrying the token ([`Transition::fence`](super::super::Transition::fence)),
//! and renews the lease while the guest runs. When a lease lapses (its
//! node died or lost the database), another node reads it as lapsed and
//! puts the task back under the retry policy; the old owner's transitions
//! carry the old token and are refused, so a task never ends `Succeeded`
//! twice.

use super::super::{Result, TaskRow};
use super::PgStore;
use super::tasks::{COLUMNS, QUEUES, row_from};
use crate::tasks::TaskState;

/// A claimed task: its row (with payload) and the claim's fencing token.
#[derive(Debug, Clone)]
pub struct Claim {
    pub row: TaskRow,
    pub token: i64,
}

/// A lease that lapsed: the task as it is, the token it was held under
/// and the node that held it.
#[derive(Debug, Clone)]
pub struct Lapsed {
    pub row: TaskRow,
    pub token: i64,
    pub owner: String,
}

impl PgStore {
    /// Claims up to `limit` due tasks for `node`, leased until `now_ms +
    /// lease_ms`, taking the queue partitions in turn from `first_queue`
    /// on. One statement: a partition's rows are read (and locked) only
    /// while the claim still wants more, so the scan stops where the
    /// batch is full.
    pub async fn claim_due(
        &self,
        node: &str,
        first_queue: i16,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claim>> {
        let sql = format!(
            "WITH due AS (
                 SELECT d.seq AS due_seq
                 FROM unnest($1::smallint[]) WITH ORDINALITY AS p(queue, turn)
                 CROSS JOIN LATERAL (
                     SELECT seq FROM tasks
                     WHERE queue = p.queue AND end_ms = 0 AND lease_owner IS NULL AND next_run_ms <= $2
                       AND status IN ('Enqueued', 'Dequeued', 'Retrying')
                     ORDER BY next_run_ms, seq
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED) d
                 ORDER BY p.turn
                 LIMIT $3)
             UPDATE tasks t SET
                 lease_owner = $4,
                 lease_until_ms = $2 + $5,
                 lease_token = nextval('lease_tokens')
             FROM due WHERE t.seq = due.due_seq
             RETURNING {COLUMNS}, payload"
        );
        let turns: Vec<i16> = (0..QUEUES).map(|i| (first_queue + i).rem_euclid(QUEUES)).collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        // One round trip, and the commit does not wait for its WAL flush:
        // a claim lost with the database's last moments only lets the task
        // be claimed again (this node's transitions carry the lost token
        // and are refused), and the first durable commit after it — the
        // task's next transition — flushes it anyway.
        let limit = limit as i64;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&turns, &now_ms, &limit, &node, &lease_ms];
        let (begun, rows, committed) = futures::join!(
            client.batch_execute("BEGIN; SET LOCAL synchronous_commit TO OFF"),
            client.query(&statement, &params),
            client.batch_execute("COMMIT"),
        );
        begun?;
        let rows = rows?;
        committed?;
        let mut claims: Vec<Claim> = rows
            .iter()
            .map(|r| {
                let (row, token) = row_from(r, true);
                Claim { row, token }
            })
            .collect();
        claims.sort_by_key(|c| (c.row.next_run_ms, c.row.seq));
        Ok(claims)
    }

    /// Extends the leases `node` holds under `tokens` to `until_ms`; answers
    /// the tasks still held, with their states (a task missing from the
    /// answer was lost; one that reads `Stopping` was asked to stop).
    pub async fn renew_leases(&self, node: &str, tokens: &[i64], until_ms: i64) -> Result<Vec<(i64, TaskState)>> {
        let rows = self
            .client()
            .await?
            .query(
                // Rows locked in seq order, as every multi-row write here
                // locks them, so two writers never wait on each other.
                "UPDATE tasks SET lease_until_ms = $3
                 WHERE seq IN (SELECT seq FROM tasks
                               WHERE lease_token = ANY($2) AND lease_owner = $1 AND end_ms = 0
                               ORDER BY seq FOR UPDATE)
                 RETURNING seq, status",
                &[&node, &tokens, &until_ms],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let status: String = r.get(1);
                (r.get(0), TaskState::parse(&status).unwrap_or(TaskState::Invalid))
            })
            .collect())
    }

    /// Up to `limit` unfinished tasks whose leases lapsed before `now_ms`.
    pub async fn lapsed_leases(&self, now_ms: i64, limit: i64) -> Result<Vec<Lapsed>> {
        let sql = format!(
            "SELECT {COLUMNS}, lease_owner FROM tasks
             WHERE end_ms = 0 AND lease_owner IS NOT NULL AND lease_until_ms < $1
             ORDER BY lease_until_ms LIMIT $2"
        );
        let rows = self.client().await?.query(&sql, &[&now_ms, &limit]).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let (row, token) = row_from(r, false);
                Lapsed {
                    row,
                    token,
                    owner: r.get(21),
                }
            })
            .collect())
    }

    /// Gives up a lease that lapsed under `token` without changing the
    /// task's state (it had not started): claimable again at once. False
    /// when the lease was renewed or taken meanwhile.
    pub async fn release_lapsed(&self, seq: i64, token: i64, now_ms: i64) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE tasks SET lease_owner = NULL, lease_until_ms = 0
                 WHERE seq = $1 AND lease_token = $2 AND lease_until_ms < $3 AND end_ms = 0",
                &[&seq, &token, &now_ms],
            )
            .await?;
        Ok(n == 1)
    }
}
