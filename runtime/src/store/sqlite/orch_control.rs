//! Operations on an instance (terminate, suspend, resume, rewind), applied
//! as [`Control::check`] and [`rewind::plan`] decide.

use rusqlite::{Connection, params};

use super::super::{ControlOutcome, NewTask, OrchRow, Result};
use super::SqliteStore;
use super::durable::{append, get_row, insert_tasks, load_history};
use crate::journal::rewind::{self, StepRetry};
use crate::journal::{Control, HistoryEvent, Refusal};

/// Applies [`rewind::plan`] to a failed instance: its failures rewritten
/// inert, `ExecutionRewound`, then a new `TaskScheduled` and task for each
/// failed step. Answers the inserted tasks.
fn apply_rewind(
    c: &Connection,
    row: &OrchRow,
    next: &mut i64,
    now_ms: i64,
    reason: String,
    rewind_task: &dyn Fn(&OrchRow, &StepRetry) -> NewTask,
) -> Result<Vec<(i64, NewTask)>> {
    let plan = rewind::plan(&load_history(c, row.rid)?);
    let mut update = c.prepare_cached(
        "UPDATE orchestration_history SET event_type = 'GenericEvent', step = NULL, body = ?3
         WHERE rid = ?1 AND seq = ?2",
    )?;
    for (seq, inert) in &plan.inert {
        update.execute(params![row.rid, seq, serde_json::to_string(inert)?])?;
    }
    append(c, row.rid, next, now_ms, &[HistoryEvent::ExecutionRewound { reason }])?;
    let mut new_tasks = Vec::new();
    for retry in &plan.retries {
        let task = rewind_task(row, retry);
        let scheduled = HistoryEvent::TaskScheduled {
            step: retry.step,
            name: retry.name.clone(),
            input: retry.input.clone(),
            task_id: task.invocation_id.clone(),
            attempt: retry.attempt,
            retry: None,
        };
        append(c, row.rid, next, now_ms, &[scheduled])?;
        new_tasks.push(task);
    }
    insert_tasks(c, new_tasks)
}

impl SqliteStore {
    /// Terminate, suspend, resume or rewind, when [`Control::check`]
    /// allows it. `rewind_task` builds the task of a failed step's new
    /// attempt.
    pub async fn orch_control<F>(
        &self,
        instance_id: &str,
        op: Control,
        now_ms: i64,
        rewind_task: F,
    ) -> Result<ControlOutcome>
    where
        F: Fn(&OrchRow, &StepRetry) -> NewTask + Send + Sync + 'static,
    {
        let id = instance_id.to_string();
        self.write(move |c| {
            let Some(row) = get_row(c, "instance_id = ?1", &id)? else {
                return Ok(ControlOutcome::NotFound);
            };
            match op.check(row.status) {
                Err(Refusal::Gone(status)) => return Ok(ControlOutcome::Gone(status)),
                Err(Refusal::WrongState(status)) => return Ok(ControlOutcome::WrongState(status)),
                Ok(()) => {}
            }
            let mut next = row.next_seq;
            let mut tasks = Vec::new();
            match op {
                Control::Terminate(reason) => {
                    let output = serde_json::Value::String(reason.clone()).to_string();
                    append(
                        c,
                        row.rid,
                        &mut next,
                        now_ms,
                        &[HistoryEvent::ExecutionTerminated { reason }],
                    )?;
                    c.prepare_cached("DELETE FROM orchestration_timers WHERE rid = ?1")?
                        .execute([row.rid])?;
                    c.prepare_cached(
                        "UPDATE orchestrations SET status = 'Terminated', output = ?2, next_seq = ?3, pending = 0,
                         updated_ms = ?4 WHERE rid = ?1",
                    )?
                    .execute(params![row.rid, output, next, now_ms])?;
                }
                Control::Suspend(reason) => {
                    append(
                        c,
                        row.rid,
                        &mut next,
                        now_ms,
                        &[HistoryEvent::ExecutionSuspended { reason }],
                    )?;
                    c.prepare_cached(
                        "UPDATE orchestrations SET status = 'Suspended', next_seq = ?2, updated_ms = ?3 WHERE rid = ?1",
                    )?
                    .execute(params![row.rid, next, now_ms])?;
                }
                Control::Resume(reason) => {
                    append(
                        c,
                        row.rid,
                        &mut next,
                        now_ms,
                        &[HistoryEvent::ExecutionResumed { reason }],
                    )?;
                    c.prepare_cached(
                        "UPDATE orchestrations SET status = 'Running', next_seq = ?2, pending = 1, updated_ms = ?3
                         WHERE rid = ?1",
                    )?
                    .execute(params![row.rid, next, now_ms])?;
                }
                Control::Rewind(reason) => {
                    tasks = apply_rewind(c, &row, &mut next, now_ms, reason, &rewind_task)?;
                    c.prepare_cached(
                        "UPDATE orchestrations SET status = 'Running', output = NULL, next_seq = ?2, pending = 1,
                         updated_ms = ?3 WHERE rid = ?1",
                    )?
                    .execute(params![row.rid, next, now_ms])?;
                }
            }
            let row = get_row(c, "rid = ?1", &row.rid)?.unwrap_or(row);
            Ok(ControlOutcome::Done(Box::new(row), tasks))
        })
        .await
    }
}
