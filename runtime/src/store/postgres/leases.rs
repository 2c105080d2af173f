//! Task leases: how nodes sharing one PostgreSQL divide the queue.
//!
//! A node claims due tasks in batches (`FOR UPDATE SKIP LOCKED`, so
//! concurrent claimers pass over each other's rows instead of waiting),
//! one queue partition at a time, starting from a partition of its own so
//! that nodes do not all begin at the same rows. A claim sets the task's
//! lease — the owner node, an expiry, and a fresh fencing token from the
//! `lease_tokens` sequence — and takes from the queue (`Dequeued`) the
//! claimed tasks the node has slots for; the node then moves each task
//! through the same transitions as the embedded store, each
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

/// What a node claims: up to `limit` due tasks for `node`, leased until
/// `now_ms + lease_ms`, taking the queue partitions in turn from
/// `first_queue` on.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub node: &'a str,
    pub first_queue: i16,
    pub now_ms: i64,
    pub lease_ms: i64,
    pub limit: usize,
    /// How many of the claimed tasks the node can run at once.
    pub slots: usize,
    /// The functions whose old tasks expire rather than run.
    pub ages: &'a AgeLimits,
}

/// The functions whose tasks expire after an age
/// (`maxAsyncEventAgeInSeconds`), as columns: a claim leaves their older
/// tasks for the node's runner to expire rather than taking them from the
/// queue.
#[derive(Debug, Clone, Default)]
pub struct AgeLimits {
    services: Vec<String>,
    functions: Vec<String>,
    qualifiers: Vec<String>,
    max_age_ms: Vec<i64>,
}

impl AgeLimits {
    /// Tasks of `service`/`function` submitted under `qualifier` expire
    /// once older than `max_age_ms`.
    pub fn push(&mut self, service: &str, function: &str, qualifier: &str, max_age_ms: i64) {
        self.services.push(service.to_string());
        self.functions.push(function.to_string());
        self.qualifiers.push(qualifier.to_string());
        self.max_age_ms.push(max_age_ms);
    }
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
    /// Claims what `claim` asks for; answers the tasks in the order they
    /// should run.
    ///
    /// The first `slots` claimed tasks — those the node has room to run
    /// at once — are taken from the queue in the same statement when they
    /// are `Enqueued`: `Dequeued`, with their history event, unless `ages`
    /// says they are too old to run (those stay `Enqueued`, for the node's
    /// runner to expire). The rest wait on the node still `Enqueued`,
    /// as they would in the queue of one node. A claim is the moment a
    /// task leaves the shared queue, and one write per task less is what
    /// lets a node keep up with its guests.
    pub async fn claim_due(&self, claim: &ClaimRequest<'_>) -> Result<Vec<Claim>> {
        let ClaimRequest {
            node,
            first_queue,
            now_ms,
            lease_ms,
            limit,
            slots,
            ages,
        } = *claim;
        let sql = format!(
            "WITH due AS (
                 SELECT d.seq AS due_seq,
                        d.status = 'Enqueued'
                        AND row_number() OVER (ORDER BY p.turn, d.next_run_ms, d.seq) <= $11
                        AND (d.kind = 'activity' OR NOT EXISTS (
                            SELECT 1 FROM unnest($6::text[], $7::text[], $8::text[], $9::bigint[])
                                AS a(service, function, qualifier, max_age_ms)
                            WHERE a.service = d.service AND a.function = d.function
                              AND a.qualifier = d.qualifier AND $2 - d.created_ms > a.max_age_ms)) AS dequeues
                 FROM unnest($1::smallint[]) WITH ORDINALITY AS p(queue, turn)
                 CROSS JOIN LATERAL (
                     SELECT seq, status, kind, service, function, qualifier, created_ms, next_run_ms FROM tasks
                     WHERE queue = p.queue AND end_ms = 0 AND lease_owner IS NULL AND next_run_ms <= $2
                       AND status IN ('Enqueued', 'Dequeued', 'Retrying')
                     ORDER BY next_run_ms, seq
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED) d
                 ORDER BY p.turn, d.next_run_ms, d.seq
                 LIMIT $3),
             claimed AS (
                 UPDATE tasks t SET
                     lease_owner = $4,
                     lease_until_ms = $2 + $5,
                     lease_token = nextval('lease_tokens'),
                     status = CASE WHEN due.dequeues THEN 'Dequeued' ELSE t.status END,
                     events = t.events + due.dequeues::int
                 FROM due WHERE t.seq = due.due_seq
                 RETURNING {COLUMNS}, payload, t.events, due.dequeues),
             history AS (
                 INSERT INTO task_events (task_seq, event_id, event_type, ts_ms, detail)
                 SELECT seq, events, 'Dequeued', $2, $10 FROM claimed WHERE dequeues)
             SELECT * FROM claimed"
        );
        let turns: Vec<i16> = (0..QUEUES).map(|i| (first_queue + i).rem_euclid(QUEUES)).collect();
        let detail = format!("taken from the queue by node {node}; waiting for an instance");
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        // One round trip, and the commit does not wait for its WAL flush:
        // a claim lost with the database's last moments only lets the task
        // be claimed again (this node's transitions carry the lost token
        // and are refused), and the first durable commit after it — the
        // task's next transition — flushes it anyway.
        let (limit, slots) = (limit as i64, slots as i64);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
            &turns,
            &now_ms,
            &limit,
            &node,
            &lease_ms,
            &ages.services,
            &ages.functions,
            &ages.qualifiers,
            &ages.max_age_ms,
            &detail,
            &slots,
        ];
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
        // Those taken from the queue (or retrying) first: they have slots.
        claims.sort_by_key(|c| (c.row.status == TaskState::Enqueued, c.row.next_run_ms, c.row.seq));
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
