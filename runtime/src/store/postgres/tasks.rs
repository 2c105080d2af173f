//! Task persistence on PostgreSQL: inserts, transitions with their history
//! events, reads. The same [`NewTask`], [`Transition`] and [`Applied`] as
//! the embedded store; the difference is concurrency. On SQLite the single
//! writer thread makes a transition's read-decide-write atomic; here the
//! row is locked (`SELECT … FOR UPDATE`) for the transaction, and a
//! transition may carry a fencing token ([`Fence`]) that must still be the
//! row's lease token, so a node whose lease lapsed cannot end the task.

use bytes::Bytes;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, Row, Transaction};

use super::super::{Applied, NewTask, Result, StoreError, TaskRow, Transition};
use crate::tasks::{HistoryEvent, TaskKind, TaskState};

/// The lease token a transition requires (from the task's claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence(pub i64);

pub(super) const COLUMNS: &str = "seq, service, function, qualifier, invocation_id, stateful, kind, status, \
     request_id, created_ms, end_ms, attempts, next_run_ms, error, result, destination_status, instance_id, \
     duration_ms, fuel_consumed, lease_token";

/// A task row as selected with [`COLUMNS`] (and the payload after them,
/// when `with_payload`); answers the row and its lease token.
pub(super) fn row_from(r: &Row, with_payload: bool) -> (TaskRow, i64) {
    let kind: String = r.get(6);
    let status: String = r.get(7);
    let attempts: i32 = r.get(11);
    let row = TaskRow {
        seq: r.get(0),
        service: r.get(1),
        function: r.get(2),
        qualifier: r.get(3),
        invocation_id: r.get(4),
        stateful: r.get(5),
        // Only wasmfc writes these columns; unknown names read as on SQLite.
        kind: TaskKind::parse(&kind).unwrap_or(TaskKind::Event),
        status: TaskState::parse(&status).unwrap_or(TaskState::Invalid),
        request_id: r.get(8),
        created_ms: r.get(9),
        end_ms: r.get(10),
        attempts: attempts.max(0) as u32,
        next_run_ms: r.get(12),
        error: r.get(13),
        result: r.get::<_, Option<Vec<u8>>>(14).map(Bytes::from),
        destination_status: r.get(15),
        instance_id: r.get(16),
        duration_ms: r.get(17),
        fuel_consumed: r.get::<_, Option<i64>>(18).map(|f| f as u64),
        payload: with_payload
            .then(|| r.get::<_, Option<Vec<u8>>>(20).map(Bytes::from))
            .flatten(),
    };
    (row, r.get(19))
}

fn select(with_payload: bool) -> String {
    let payload = if with_payload { ", payload" } else { "" };
    format!("SELECT {COLUMNS}{payload} FROM tasks")
}

pub(super) async fn append_event(
    c: &impl GenericClient,
    seq: i64,
    event_id: i32,
    state: TaskState,
    ts: i64,
    detail: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO task_events (task_seq, event_id, event_type, ts_ms, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&seq, &event_id, &state.as_str(), &ts, &detail],
    )
    .await?;
    Ok(())
}

/// Queue partitions.
pub const QUEUES: i16 = 16;

const QUEUE_HASH: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_ECMA_182);

/// The queue partition of a function's tasks: claims scan one partition at
/// a time, so nodes spread over partitions rather than contend for one set
/// of rows.
pub fn queue_of(service: &str, function: &str) -> i16 {
    let mut digest = QUEUE_HASH.digest();
    digest.update(service.as_bytes());
    digest.update(b"/");
    digest.update(function.as_bytes());
    (digest.finalize() % QUEUES as u64) as i16
}

/// Inserts a task in `Enqueued` with its first history event.
pub async fn insert_task(client: &mut Client, t: &NewTask) -> Result<i64> {
    let tx = client.transaction().await?;
    let seq = insert_in(&tx, t).await?;
    tx.commit().await?;
    Ok(seq)
}

async fn insert_in(tx: &Transaction<'_>, t: &NewTask) -> Result<i64> {
    let inserted = tx
        .query_one(
            "INSERT INTO tasks (service, function, qualifier, invocation_id, stateful, kind, status, payload,
                                request_id, created_ms, next_run_ms, events, queue)
             VALUES ($1, $2, $3, $4, $5, $6, 'Enqueued', $7, $8, $9, $10, 1, $11)
             RETURNING seq",
            &[
                &t.service,
                &t.function,
                &t.qualifier,
                &t.invocation_id,
                &t.stateful,
                &t.kind.as_str(),
                &t.payload.as_ref(),
                &t.request_id,
                &t.created_ms,
                &t.due_ms,
                &queue_of(&t.service, &t.function),
            ],
        )
        .await;
    let seq: i64 = match inserted {
        Ok(row) => row.get(0),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(StoreError::Duplicate(format!(
                "invocation '{}' already exists for function {}/{}",
                t.invocation_id, t.service, t.function
            )));
        }
        Err(e) => return Err(e.into()),
    };
    append_event(tx, seq, 1, TaskState::Enqueued, t.created_ms, &t.detail).await?;
    Ok(seq)
}

/// Applies one transition (refused, `None`, when it does not apply or the
/// fence is no longer the row's).
pub async fn transition(client: &mut Client, t: Transition, fence: Option<Fence>) -> Result<Option<Applied>> {
    let tx = client.transaction().await?;
    let applied = apply(&tx, t, fence).await?;
    tx.commit().await?;
    Ok(applied)
}

async fn apply(tx: &Transaction<'_>, t: Transition, fence: Option<Fence>) -> Result<Option<Applied>> {
    let sql = format!("{} WHERE seq = $1 FOR UPDATE", select(t.want_payload));
    let Some(found) = tx.query_opt(&sql, &[&t.seq]).await? else {
        return Ok(None);
    };
    let (mut row, token) = row_from(&found, t.want_payload);
    if fence.is_some_and(|Fence(f)| f != token) {
        tracing::info!(seq = t.seq, "refused a transition with a stale lease token");
        return Ok(None);
    }
    let Some(next) = (t.decide)(&row) else { return Ok(None) };
    if !row.status.can_become(next) {
        tracing::error!(seq = t.seq, from = %row.status, to = %next, "refused an illegal task transition");
        return Ok(None);
    }
    let now = crate::util::now_ms();
    let follow_up = t.follow_up.filter(|f| f.when == next);
    let mut u = t.update;
    if let Some(f) = &follow_up {
        u.destination_status = Some(f.status.clone());
    }
    let end_ms = u.end_ms.or(next.is_terminal().then_some(now));
    // A terminal state or a retry gives the lease up.
    let releases = next.is_terminal() || next == TaskState::Retrying;
    let event_id: i32 = tx
        .query_one(
            "UPDATE tasks SET status = $2,
                 attempts = COALESCE($3, attempts),
                 next_run_ms = COALESCE($4, next_run_ms),
                 end_ms = COALESCE($5, end_ms),
                 error = COALESCE($6, error),
                 result = COALESCE($7, result),
                 destination_status = COALESCE($8, destination_status),
                 instance_id = COALESCE($9, instance_id),
                 duration_ms = COALESCE($10, duration_ms),
                 logs = COALESCE($11, logs),
                 fuel_consumed = COALESCE($12, fuel_consumed),
                 lease_owner = CASE WHEN $13 THEN NULL ELSE lease_owner END,
                 lease_until_ms = CASE WHEN $13 THEN 0 ELSE lease_until_ms END,
                 events = events + 1
             WHERE seq = $1
             RETURNING events",
            &[
                &t.seq,
                &next.as_str(),
                &u.attempts.map(|a| a as i32),
                &u.next_run_ms,
                &end_ms,
                &u.error,
                &u.result.as_deref(),
                &u.destination_status,
                &u.instance_id,
                &u.duration_ms,
                &u.logs.as_deref(),
                &u.fuel_consumed.map(|f| f as i64),
                &releases,
            ],
        )
        .await?
        .get(0);
    append_event(tx, t.seq, event_id, next, now, &t.detail).await?;
    let follow_up_seq = match follow_up.and_then(|f| f.task) {
        // In a savepoint: a duplicate destination id (a delivery made
        // before) must not abort the transition's transaction.
        Some(task) => insert_follow_up(tx, &task).await?,
        None => None,
    };
    row.status = next;
    if let Some(end) = end_ms {
        row.end_ms = end;
    }
    Ok(Some(Applied {
        state: next,
        row,
        follow_up_seq,
    }))
}

async fn insert_follow_up(tx: &Transaction<'_>, task: &NewTask) -> Result<Option<i64>> {
    tx.batch_execute("SAVEPOINT follow_up").await?;
    match insert_in(tx, task).await {
        Ok(seq) => {
            tx.batch_execute("RELEASE SAVEPOINT follow_up").await?;
            Ok(Some(seq))
        }
        Err(StoreError::Duplicate(e)) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT follow_up").await?;
            tracing::warn!(error = %e, "destination task not inserted");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A task by seq (without its payload).
pub async fn get_task(client: &impl GenericClient, seq: i64) -> Result<Option<TaskRow>> {
    let sql = format!("{} WHERE seq = $1", select(false));
    Ok(client.query_opt(&sql, &[&seq]).await?.map(|r| row_from(&r, false).0))
}

/// A task's history, oldest first.
pub async fn task_events(client: &impl GenericClient, seq: i64) -> Result<Vec<HistoryEvent>> {
    let rows = client
        .query(
            "SELECT event_id, event_type, ts_ms, detail FROM task_events WHERE task_seq = $1 ORDER BY event_id",
            &[&seq],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| HistoryEvent {
            event_id: i64::from(r.get::<_, i32>(0)),
            event_type: r.get(1),
            timestamp_ms: r.get(2),
            detail: r.get(3),
        })
        .collect())
}
