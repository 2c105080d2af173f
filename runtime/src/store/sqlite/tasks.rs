//! Task persistence: rows, state transitions with their history events,
//! listing with keyset paging.
//!
//! A transition reads the task's current state and decides the new one
//! inside the writer's transaction, so check-and-set is atomic without row
//! locks: the writer thread is the only writer. Every applied transition
//! appends a history event in the same transaction.

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::super::changes::{self, TaskChange};
use super::super::log_budget::LogBudget;
use super::super::{Applied, NewTask, Result, StoreError, TaskRow, Transition};
use super::SqliteStore;
use super::log_budget;
use crate::tasks::{HistoryEvent, TaskKind, TaskState};

const COLUMNS: &str = "seq, service, function, qualifier, invocation_id, stateful, kind, status, request_id, \
     created_ms, end_ms, attempts, next_run_ms, error, result, destination_status, instance_id, duration_ms, \
     fuel_consumed";

pub(super) fn row_from(r: &rusqlite::Row<'_>, with_payload: bool) -> rusqlite::Result<TaskRow> {
    let status: String = r.get(7)?;
    let kind: String = r.get(6)?;
    Ok(TaskRow {
        seq: r.get(0)?,
        service: r.get(1)?,
        function: r.get(2)?,
        qualifier: r.get(3)?,
        invocation_id: r.get(4)?,
        stateful: r.get::<_, i64>(5)? != 0,
        // Only this build writes the column; an unknown name runs as an event.
        kind: TaskKind::parse(&kind).unwrap_or(TaskKind::Event),
        status: TaskState::parse(&status).unwrap_or(TaskState::Invalid),
        request_id: r.get(8)?,
        created_ms: r.get(9)?,
        end_ms: r.get(10)?,
        attempts: r.get::<_, i64>(11)? as u32,
        next_run_ms: r.get(12)?,
        error: r.get(13)?,
        result: r.get::<_, Option<Vec<u8>>>(14)?.map(Bytes::from),
        destination_status: r.get(15)?,
        instance_id: r.get(16)?,
        duration_ms: r.get(17)?,
        fuel_consumed: r.get::<_, Option<i64>>(18)?.map(|f| f as u64),
        lease_until_ms: 0,
        payload: if with_payload {
            r.get::<_, Option<Vec<u8>>>(19)?.map(Bytes::from)
        } else {
            None
        },
    })
}

pub(super) fn select(with_payload: bool) -> String {
    if with_payload {
        format!("SELECT {COLUMNS}, payload FROM tasks")
    } else {
        format!("SELECT {COLUMNS} FROM tasks")
    }
}

/// Writes history event `event_id` of task `seq`. The caller has already
/// advanced the task's `events` counter in its own statement (one statement
/// fewer per write on the single writer thread).
fn append_event(c: &Connection, seq: i64, event_id: i64, event_type: &str, ts: i64, detail: &str) -> Result<()> {
    // Cached statements: these run several times per task on the single
    // writer thread, where parsing SQL would be most of the cost.
    c.prepare_cached(
        "INSERT INTO task_events(task_seq, event_id, event_type, ts_ms, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![seq, event_id, event_type, ts, detail])?;
    Ok(())
}

pub(super) fn insert(c: &Connection, t: &NewTask) -> Result<i64> {
    let inserted = c.prepare_cached(
        "INSERT INTO tasks(service, function, qualifier, invocation_id, stateful, kind, status, payload, request_id, created_ms, \
         next_run_ms, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'Enqueued', ?7, ?8, ?9, ?10, 1)",
    )?
    .execute(params![
            t.service,
            t.function,
            t.qualifier,
            t.invocation_id,
            t.stateful as i64,
            t.kind.as_str(),
            t.payload.as_ref(),
            t.request_id,
            t.created_ms,
            t.due_ms
        ]);
    match inserted {
        Ok(_) => {}
        Err(e) => {
            let e = StoreError::from(e);
            if e.is_unique_violation() {
                return Err(StoreError::Duplicate(format!(
                    "invocation '{}' already exists for function {}/{}",
                    t.invocation_id, t.service, t.function
                )));
            }
            return Err(e);
        }
    }
    let seq = c.last_insert_rowid();
    append_event(c, seq, 1, TaskState::Enqueued.as_str(), t.created_ms, &t.detail)?;
    changes::note(TaskChange {
        seq,
        service: t.service.clone(),
        function: t.function.clone(),
        invocation_id: t.invocation_id.clone(),
        status: TaskState::Enqueued,
        stateful: t.stateful,
    });
    Ok(seq)
}

fn apply(c: &Connection, t: Transition, logs: &LogBudget) -> Result<Option<Applied>> {
    let Some(row) = c
        .prepare_cached(&format!("{} WHERE seq = ?1", select(t.want_payload)))?
        .query_row([t.seq], |r| row_from(r, t.want_payload))
        .optional()?
    else {
        return Ok(None);
    };
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
    if let Some(log) = &u.logs {
        log_budget::replace(logs, c, t.seq, log.len())?;
    }
    let event_id = c
        .prepare_cached(
            "UPDATE tasks SET status = ?2,
             attempts = COALESCE(?3, attempts),
             next_run_ms = COALESCE(?4, next_run_ms),
             end_ms = COALESCE(?5, end_ms),
             error = COALESCE(?6, error),
             result = COALESCE(?7, result),
             destination_status = COALESCE(?8, destination_status),
             instance_id = COALESCE(?9, instance_id),
             duration_ms = COALESCE(?10, duration_ms),
             logs = COALESCE(?11, logs),
             fuel_consumed = COALESCE(?12, fuel_consumed),
             events = events + 1
         WHERE seq = ?1
         RETURNING events",
        )?
        .query_row(
            params![
                t.seq,
                next.as_str(),
                u.attempts,
                u.next_run_ms,
                end_ms,
                u.error,
                u.result.as_deref(),
                u.destination_status,
                u.instance_id,
                u.duration_ms,
                u.logs.as_deref(),
                u.fuel_consumed.map(|f| f as i64)
            ],
            |r| r.get::<_, i64>(0),
        )?;
    append_event(c, t.seq, event_id, next.as_str(), now, &t.detail)?;
    let follow_up_seq = match follow_up.and_then(|f| f.task) {
        Some(task) => match insert(c, &task) {
            Ok(seq) => Some(seq),
            Err(e) => {
                // The destination already has a task with this id: the
                // delivery happened before (a retried transition).
                tracing::warn!(error = %e, "destination task not inserted");
                None
            }
        },
        None => None,
    };
    let mut row = row;
    row.status = next;
    changes::note(TaskChange {
        seq: row.seq,
        service: row.service.clone(),
        function: row.function.clone(),
        invocation_id: row.invocation_id.clone(),
        status: next,
        stateful: row.stateful,
    });
    if let Some(end) = end_ms {
        row.end_ms = end;
    }
    Ok(Some(Applied {
        state: next,
        row,
        follow_up_seq,
    }))
}

impl SqliteStore {
    /// Inserts a task in `Enqueued`; answers after the commit. A duplicate
    /// invocation id for the function is a [`StoreError::Duplicate`].
    pub async fn insert_task(&self, task: NewTask) -> Result<i64> {
        self.write(move |c| insert(c, &task)).await
    }

    /// Applies one transition; `None` when it did not apply.
    pub async fn transition(&self, t: Transition) -> Result<Option<Applied>> {
        let logs = self.inner.log_budget.clone();
        self.write(move |c| {
            let applied = apply(c, t, &logs)?;
            log_budget::prune(&logs, c)?;
            Ok(applied)
        })
        .await
    }

    /// Applies transitions in one commit (each one independently).
    pub async fn transition_many(&self, ts: Vec<Transition>) -> Result<Vec<Option<Applied>>> {
        let logs = self.inner.log_budget.clone();
        self.write(move |c| {
            let applied = ts.into_iter().map(|t| apply(c, t, &logs)).collect();
            log_budget::prune(&logs, c)?;
            applied
        })
        .await
    }

    /// Moves every non-terminal task of a function to `Invalid`; answers
    /// their (seq, kind, invocation id).
    pub async fn invalidate_function_tasks(
        &self,
        service: &str,
        function: &str,
        detail: &str,
    ) -> Result<Vec<(i64, TaskKind, String)>> {
        let (service, function, detail) = (service.to_string(), function.to_string(), detail.to_string());
        self.write(move |c| {
            let mut stmt = c.prepare(
                "SELECT seq, kind, invocation_id, stateful FROM tasks WHERE end_ms = 0 AND service = ?1 AND function = ?2",
            )?;
            let rows: Vec<(i64, TaskKind, String, bool)> = stmt
                .query_map(params![service, function], |r| {
                    let kind: String = r.get(1)?;
                    let kind = TaskKind::parse(&kind).unwrap_or(TaskKind::Event);
                    Ok((r.get(0)?, kind, r.get(2)?, r.get::<_, i64>(3)? != 0))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let now = crate::util::now_ms();
            for (seq, _, invocation_id, stateful) in &rows {
                let event_id: i64 = c.query_row(
                    "UPDATE tasks SET status = 'Invalid', end_ms = ?2, error = ?3, events = events + 1
                     WHERE seq = ?1 RETURNING events",
                    params![seq, now, detail],
                    |r| r.get(0),
                )?;
                append_event(c, *seq, event_id, TaskState::Invalid.as_str(), now, &detail)?;
                changes::note(TaskChange {
                    seq: *seq,
                    service: service.clone(),
                    function: function.clone(),
                    invocation_id: invocation_id.clone(),
                    status: TaskState::Invalid,
                    stateful: *stateful,
                });
            }
            Ok(rows.into_iter().map(|(seq, kind, id, _)| (seq, kind, id)).collect())
        })
        .await
    }

    pub async fn get_task(
        &self,
        service: &str,
        function: &str,
        invocation_id: &str,
        with_payload: bool,
    ) -> Result<Option<TaskRow>> {
        let (service, function, id) = (service.to_string(), function.to_string(), invocation_id.to_string());
        self.read(move |c| {
            Ok(c.query_row(
                &format!(
                    "{} WHERE service = ?1 AND function = ?2 AND invocation_id = ?3",
                    select(with_payload)
                ),
                params![service, function, id],
                |r| row_from(r, with_payload),
            )
            .optional()?)
        })
        .await
    }

    pub async fn task_events(&self, seq: i64) -> Result<Vec<HistoryEvent>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT event_id, event_type, ts_ms, detail FROM task_events WHERE task_seq = ?1 ORDER BY event_id",
            )?;
            let events = stmt
                .query_map([seq], |r| {
                    Ok(HistoryEvent {
                        event_id: r.get(0)?,
                        event_type: r.get(1)?,
                        timestamp_ms: r.get(2)?,
                        detail: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(events)
        })
        .await
    }

    pub async fn task_payload(&self, seq: i64) -> Result<Option<Bytes>> {
        self.read(move |c| {
            Ok(c.query_row("SELECT payload FROM tasks WHERE seq = ?1", [seq], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()?
            .map(Bytes::from))
        })
        .await
    }

    pub async fn task_logs(&self, seq: i64) -> Result<Option<Bytes>> {
        self.read(move |c| {
            Ok(c.query_row("SELECT logs FROM tasks WHERE seq = ?1", [seq], |r| {
                r.get::<_, Option<Vec<u8>>>(0)
            })
            .optional()?
            .flatten()
            .map(Bytes::from))
        })
        .await
    }

    /// Every non-terminal task (startup recovery), oldest first.
    pub async fn active_tasks(&self) -> Result<Vec<TaskRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!("{} WHERE end_ms = 0 ORDER BY seq", select(false)))?;
            let rows = stmt
                .query_map([], |r| row_from(r, false))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    /// Deletes terminal tasks (and their history) that ended before `ms`.
    pub async fn purge_tasks_ended_before(&self, ms: i64) -> Result<usize> {
        let logs = self.inner.log_budget.clone();
        self.write(move |c| {
            c.execute(
                "DELETE FROM task_events WHERE task_seq IN (SELECT seq FROM tasks WHERE end_ms > 0 AND end_ms < ?1)",
                [ms],
            )?;
            let purged = c.execute("DELETE FROM tasks WHERE end_ms > 0 AND end_ms < ?1", [ms])?;
            if purged > 0 {
                logs.reset_used(log_budget::measure(c)?);
            }
            Ok(purged)
        })
        .await
    }

    /// Counts of tasks by state (metrics).
    pub async fn task_counts(&self) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT status, count(*) FROM tasks GROUP BY status")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    /// Stateful tasks by (service, function, state): the console's counts.
    pub async fn task_counts_by_function(&self) -> Result<Vec<(String, String, TaskState, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                // Finished and unfinished apart, each from its partial
                // index: one GROUP BY over the table reads every row.
                "SELECT service, function, status, count(*) FROM tasks INDEXED BY tasks_finished_by_status \
                 WHERE end_ms > 0 AND stateful = 1 GROUP BY service, function, status \
                 UNION ALL \
                 SELECT service, function, status, count(*) FROM tasks INDEXED BY tasks_unfinished \
                 WHERE end_ms = 0 AND stateful = 1 GROUP BY service, function, status",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    let status: String = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        TaskState::parse(&status).unwrap_or(TaskState::Invalid),
                        r.get(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}
