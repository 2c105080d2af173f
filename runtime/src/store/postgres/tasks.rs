//! Task persistence on PostgreSQL: inserts, transitions with their history
//! events, reads. The same [`NewTask`], [`Transition`] and [`Applied`] as
//! the embedded store; the difference is concurrency. On SQLite the single
//! writer thread makes a transition's read-decide-write atomic; here the
//! row is locked (`SELECT … FOR UPDATE`) for the transaction, and a
//! transition may carry a fencing token ([`Transition::fence`]) that must
//! still be the row's lease token, so a node whose lease lapsed cannot end
//! the task. Inserts and transitions go through the group-commit
//! [writer](super::task_writer), which also holds their `PgStore`
//! methods; the rest (reads, invalidation, purges) is here.

use bytes::Bytes;
use tokio_postgres::{GenericClient, Row};

use super::super::changes::TaskChange;
use super::super::{NewTask, Result, TaskRow};
use super::PgStore;
use super::log_budget::measure_logs;
use crate::tasks::{HistoryEvent, TaskKind, TaskState};

pub(super) const COLUMNS: &str = "seq, service, function, qualifier, invocation_id, stateful, kind, status, \
     request_id, created_ms, end_ms, attempts, next_run_ms, error, result, destination_status, instance_id, \
     duration_ms, fuel_consumed, lease_token, lease_until_ms";

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
        lease_until_ms: r.get(20),
        payload: with_payload
            .then(|| r.get::<_, Option<Vec<u8>>>(21).map(Bytes::from))
            .flatten(),
    };
    (row, r.get(19))
}

pub(super) fn select(with_payload: bool) -> String {
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

/// The change feed's record of an inserted task.
pub(super) fn inserted_change(seq: i64, t: &NewTask) -> TaskChange {
    TaskChange {
        seq,
        service: t.service.clone(),
        function: t.function.clone(),
        invocation_id: t.invocation_id.clone(),
        status: TaskState::Enqueued,
        stateful: t.stateful,
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

pub(super) fn changed(row: &TaskRow) -> TaskChange {
    TaskChange {
        seq: row.seq,
        service: row.service.clone(),
        function: row.function.clone(),
        invocation_id: row.invocation_id.clone(),
        status: row.status,
        stateful: row.stateful,
    }
}

impl PgStore {
    pub async fn invalidate_function_tasks(
        &self,
        service: &str,
        function: &str,
        detail: &str,
    ) -> Result<Vec<(i64, TaskKind, String)>> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        let now = crate::util::now_ms();
        let rows = tx
            .query(
                "UPDATE tasks SET status = 'Invalid', end_ms = $3, error = $4, events = events + 1,
                     lease_owner = NULL, lease_until_ms = 0
                 WHERE seq IN (SELECT seq FROM tasks WHERE end_ms = 0 AND service = $1 AND function = $2
                               ORDER BY seq FOR UPDATE)
                 RETURNING seq, kind, invocation_id, stateful, events",
                &[&service, &function, &now, &detail],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut changes = Vec::with_capacity(rows.len());
        for r in &rows {
            let (seq, kind, id, stateful): (i64, String, String, bool) = (r.get(0), r.get(1), r.get(2), r.get(3));
            append_event(&tx, seq, r.get(4), TaskState::Invalid, now, detail).await?;
            changes.push(TaskChange {
                seq,
                service: service.to_string(),
                function: function.to_string(),
                invocation_id: id.clone(),
                status: TaskState::Invalid,
                stateful,
            });
            out.push((seq, TaskKind::parse(&kind).unwrap_or(TaskKind::Event), id));
        }
        tx.commit().await?;
        self.publish(changes);
        Ok(out)
    }

    pub async fn get_task(
        &self,
        service: &str,
        function: &str,
        invocation_id: &str,
        with_payload: bool,
    ) -> Result<Option<TaskRow>> {
        let sql = format!(
            "{} WHERE service = $1 AND function = $2 AND invocation_id = $3",
            select(with_payload)
        );
        let client = self.client().await?;
        let row = client.query_opt(&sql, &[&service, &function, &invocation_id]).await?;
        Ok(row.map(|r| row_from(&r, with_payload).0))
    }

    pub async fn task_events(&self, seq: i64) -> Result<Vec<HistoryEvent>> {
        task_events(&**self.client().await?, seq).await
    }

    pub async fn task_payload(&self, seq: i64) -> Result<Option<Bytes>> {
        self.bytes_column("payload", seq).await
    }

    pub async fn task_logs(&self, seq: i64) -> Result<Option<Bytes>> {
        self.bytes_column("logs", seq).await
    }

    async fn bytes_column(&self, column: &'static str, seq: i64) -> Result<Option<Bytes>> {
        let sql = format!("SELECT {column} FROM tasks WHERE seq = $1");
        let row = self.client().await?.query_opt(&sql, &[&seq]).await?;
        Ok(row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)).map(Bytes::from))
    }

    pub async fn active_tasks(&self) -> Result<Vec<TaskRow>> {
        let sql = format!("{} WHERE end_ms = 0 ORDER BY seq", select(false));
        let rows = self.client().await?.query(&sql, &[]).await?;
        Ok(rows.iter().map(|r| row_from(r, false).0).collect())
    }

    pub async fn purge_tasks_ended_before(&self, ms: i64) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        tx.execute(
            "DELETE FROM task_events WHERE task_seq IN (SELECT seq FROM tasks WHERE end_ms > 0 AND end_ms < $1)",
            &[&ms],
        )
        .await?;
        let purged = tx
            .execute("DELETE FROM tasks WHERE end_ms > 0 AND end_ms < $1", &[&ms])
            .await?;
        tx.commit().await?;
        if purged > 0 {
            self.inner.log_budget.reset_used(measure_logs(&**client).await?);
        }
        Ok(purged as usize)
    }

    pub async fn task_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = self
            .client()
            .await?
            .query("SELECT status, count(*) FROM tasks GROUP BY status", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn task_counts_by_function(&self) -> Result<Vec<(String, String, TaskState, i64)>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT service, function, status, count(*) FROM tasks WHERE end_ms > 0 AND stateful
                 GROUP BY service, function, status
                 UNION ALL
                 SELECT service, function, status, count(*) FROM tasks WHERE end_ms = 0 AND stateful
                 GROUP BY service, function, status",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let status: String = r.get(2);
                (
                    r.get(0),
                    r.get(1),
                    TaskState::parse(&status).unwrap_or(TaskState::Invalid),
                    r.get(3),
                )
            })
            .collect())
    }
}
