//! Start-up recovery of tasks a previous process left unfinished, and the
//! janitor that drops finished tasks past their retention.

use std::time::Duration;

use super::Scheduler;
use super::queue::QueuedTask;
use crate::store::{TaskRow, TaskUpdate, Transition};
use crate::tasks::TaskState;

impl Scheduler {
    pub(super) async fn recover(&self, rows: Vec<TaskRow>) {
        use TaskState::*;
        if rows.is_empty() {
            return;
        }
        tracing::info!(tasks = rows.len(), "recovering unfinished tasks");
        for row in rows {
            let t = QueuedTask::from_row(&row);
            match row.status {
                // A delayed task (`X-Fc-Async-Delay`) keeps its due time.
                Enqueued if row.next_run_ms > crate::util::now_ms() => {
                    let wait = (row.next_run_ms - crate::util::now_ms()) as u64;
                    self.enqueue_after(t, Duration::from_millis(wait));
                }
                Enqueued | Dequeued => self.enqueue(t),
                Retrying => {
                    let wait = (row.next_run_ms - crate::util::now_ms()).max(0) as u64;
                    self.enqueue_after(t, Duration::from_millis(wait));
                }
                Running => {
                    let policy = self.policy(&row.service, &row.function, &row.qualifier);
                    let attempt = row.attempts + 1;
                    let tr = if row.attempts < policy.max_retries {
                        Transition::new(
                            row.seq,
                            &[Running],
                            Retrying,
                            format!(
                                "the server stopped during attempt {attempt}; retry {attempt} of {}",
                                policy.max_retries
                            ),
                        )
                        .with(TaskUpdate {
                            attempts: Some(attempt),
                            next_run_ms: Some(crate::util::now_ms()),
                            error: Some("the server stopped while the task ran".into()),
                            ..Default::default()
                        })
                    } else {
                        Transition::new(
                            row.seq,
                            &[Running],
                            Failed,
                            format!("the server stopped during attempt {attempt}; no retries left"),
                        )
                        .with(TaskUpdate {
                            error: Some("the server stopped while the task ran".into()),
                            ..Default::default()
                        })
                    };
                    match self.inner.store.transition(tr).await {
                        Ok(Some(a)) if a.state == Retrying => {
                            let mut t = t;
                            t.attempts = attempt;
                            t.state = Retrying;
                            self.enqueue(t);
                        }
                        Ok(Some(a)) => self.count_finished(a.state),
                        Ok(None) => {}
                        Err(e) => tracing::error!(seq = row.seq, error = %e, "recovering a running task"),
                    }
                }
                Stopping => {
                    let tr = Transition::new(
                        row.seq,
                        &[Stopping],
                        Stopped,
                        "the server stopped while the task was stopping",
                    );
                    if let Err(e) = self.inner.store.transition(tr).await {
                        tracing::error!(seq = row.seq, error = %e, "recovering a stopping task");
                    }
                }
                _ => {}
            }
        }
    }

    /// Purges finished tasks older than the retention period.
    pub(super) async fn janitor(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let cutoff = crate::util::now_ms() - self.inner.config.retention.as_millis() as i64;
            match self.inner.store.purge_tasks_ended_before(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged finished tasks past retention"),
                Err(e) => tracing::warn!(error = %e, "purging finished tasks"),
            }
        }
    }
}
