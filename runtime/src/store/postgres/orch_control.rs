//! Operations on an instance on PostgreSQL (terminate, suspend, resume,
//! rewind), applied as [`Control::check`] and [`rewind::plan`] decide.

use tokio_postgres::Transaction;

use super::super::{ControlOutcome, NewTask, OrchRow, Result};
use super::PgStore;
use super::durable::{append, insert_tasks, load_history, lock_row};
use super::tasks::inserted_change;
use crate::journal::rewind::{self, StepRetry};
use crate::journal::{Control, HistoryEvent, Refusal};

/// Applies [`rewind::plan`] to a failed instance (see the embedded store's
/// twin): failures rewritten inert, `ExecutionRewound`, then a new
/// `TaskScheduled` and task for each failed step.
async fn apply_rewind(
    tx: &Transaction<'_>,
    row: &OrchRow,
    next: &mut i64,
    now_ms: i64,
    reason: String,
    rewind_task: &(dyn Fn(&OrchRow, &StepRetry) -> NewTask + Send + Sync),
) -> Result<Vec<(i64, NewTask)>> {
    let plan = rewind::plan(&load_history(tx, row.rid).await?);
    for (seq, inert) in &plan.inert {
        tx.execute(
            "UPDATE orchestration_history SET event_type = 'GenericEvent', step = NULL, body = $3
             WHERE rid = $1 AND seq = $2",
            &[&row.rid, seq, &serde_json::to_string(inert)?],
        )
        .await?;
    }
    append(tx, row.rid, next, now_ms, &[HistoryEvent::ExecutionRewound { reason }]).await?;
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
        append(tx, row.rid, next, now_ms, &[scheduled]).await?;
        new_tasks.push(task);
    }
    insert_tasks(tx, new_tasks).await
}

/// The row update each operation makes after its history events.
fn update_for(op: &Control) -> &'static str {
    match op {
        Control::Terminate(_) => {
            "UPDATE orchestrations SET status = 'Terminated', output = $4, next_seq = $2, pending = FALSE,
             updated_ms = $3 WHERE rid = $1"
        }
        Control::Suspend(_) => {
            "UPDATE orchestrations SET status = 'Suspended', next_seq = $2, updated_ms = $3 WHERE rid = $1"
        }
        Control::Resume(_) => {
            "UPDATE orchestrations SET status = 'Running', next_seq = $2, pending = TRUE, updated_ms = $3
             WHERE rid = $1"
        }
        Control::Rewind(_) => {
            "UPDATE orchestrations SET status = 'Running', output = NULL, next_seq = $2, pending = TRUE,
             updated_ms = $3 WHERE rid = $1"
        }
    }
}

impl PgStore {
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
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        let Some(row) = lock_row(&tx, "instance_id", &instance_id).await? else {
            return Ok(ControlOutcome::NotFound);
        };
        match op.check(row.status) {
            Err(Refusal::Gone(status)) => return Ok(ControlOutcome::Gone(status)),
            Err(Refusal::WrongState(status)) => return Ok(ControlOutcome::WrongState(status)),
            Ok(()) => {}
        }
        let mut next = row.next_seq;
        let mut tasks = Vec::new();
        let update = update_for(&op);
        let mut output = None;
        match op {
            Control::Terminate(reason) => {
                output = Some(serde_json::Value::String(reason.clone()).to_string());
                let event = HistoryEvent::ExecutionTerminated { reason };
                append(&tx, row.rid, &mut next, now_ms, &[event]).await?;
                tx.execute("DELETE FROM orchestration_timers WHERE rid = $1", &[&row.rid])
                    .await?;
            }
            Control::Suspend(reason) => {
                let event = HistoryEvent::ExecutionSuspended { reason };
                append(&tx, row.rid, &mut next, now_ms, &[event]).await?;
            }
            Control::Resume(reason) => {
                let event = HistoryEvent::ExecutionResumed { reason };
                append(&tx, row.rid, &mut next, now_ms, &[event]).await?;
            }
            Control::Rewind(reason) => {
                tasks = apply_rewind(&tx, &row, &mut next, now_ms, reason, &rewind_task).await?;
            }
        }
        match output {
            Some(output) => tx.execute(update, &[&row.rid, &next, &now_ms, &output]).await?,
            None => tx.execute(update, &[&row.rid, &next, &now_ms]).await?,
        };
        let after = lock_row(&tx, "rid", &row.rid).await?.unwrap_or(row);
        tx.commit().await?;
        self.publish(tasks.iter().map(|(seq, t)| inserted_change(*seq, t)).collect());
        Ok(ControlOutcome::Done(Box::new(after), tasks))
    }
}
