//! What reaches a waiting instance: activity outcomes (with retries by
//! the step's policy), fired timers, and whether they unblock a run.

use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Durable;
use super::history::HistoryEvent;
use super::{activity_task, as_json_text, parse_task_id};
use crate::scheduler::ActivityOutcome;
use crate::tasks::TaskState;

impl Durable {
    pub(super) async fn on_activity(&self, outcome: ActivityOutcome) {
        let Some((rid, generation, step, attempt)) = parse_task_id(&outcome.invocation_id) else {
            tracing::warn!(
                task = outcome.invocation_id,
                "activity task id names no orchestration step"
            );
            return;
        };
        self.inner.stats.activities_completed.fetch_add(1, Ordering::Relaxed);
        let event = match outcome.state {
            TaskState::Succeeded => HistoryEvent::TaskCompleted {
                step,
                result: as_json_text(&outcome.result.unwrap_or_default()),
            },
            state => {
                let reason = if outcome.error.is_empty() {
                    format!("activity task ended {state}")
                } else {
                    outcome.error.clone()
                };
                // The step's retry policy may ask for another attempt.
                if state != TaskState::Stopped
                    && let Some(retried) = self.retry(rid, generation, step, attempt, &reason).await
                {
                    return retried;
                }
                HistoryEvent::TaskFailed { step, reason }
            }
        };
        self.deliver(rid, generation, Some(outcome.invocation_id), event).await;
    }

    /// Schedules the next attempt of a failed step if its policy allows;
    /// `Some(())` when it did.
    pub(super) async fn retry(&self, rid: i64, generation: u32, step: u32, attempt: u32, reason: &str) -> Option<()> {
        let (row, history) = self.inner.store.orch_load(rid).await.ok()??;
        if row.generation != generation || row.status.is_terminal() {
            return None;
        }
        let (name, input, policy) = history.iter().rev().find_map(|r| match &r.event {
            HistoryEvent::TaskScheduled {
                step: s,
                name,
                input,
                retry,
                ..
            } if *s == step => Some((name.clone(), input.clone(), *retry)),
            _ => None,
        })?;
        let delay = policy?.delay_before(attempt + 1)?;
        tracing::info!(instance = %row.instance_id, step, attempt = attempt + 1, delay_ms = delay, reason, "retrying activity");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let task = activity_task(&row, generation, step, &name, &input, attempt + 1);
        let event = HistoryEvent::TaskScheduled {
            step,
            name,
            input,
            task_id: task.invocation_id.clone(),
            attempt: attempt + 1,
            retry: policy,
        };
        match self
            .inner
            .store
            .orch_retry(rid, generation, event, task, crate::util::now_ms())
            .await
        {
            Ok(Some((seq, task))) => {
                self.inner.stats.activities_scheduled.fetch_add(1, Ordering::Relaxed);
                self.inner.scheduler.enqueue_inserted(seq, &task);
                Some(())
            }
            Ok(None) => Some(()),
            Err(e) => {
                tracing::error!(error = %e, "cannot schedule an activity retry");
                None
            }
        }
    }

    pub(super) async fn deliver(&self, rid: i64, generation: u32, task_id: Option<String>, event: HistoryEvent) {
        for attempt in 0..5 {
            match self
                .inner
                .store
                .orch_deliver(rid, generation, task_id.clone(), event.clone(), crate::util::now_ms())
                .await
            {
                Ok(Some(true)) => {
                    if self.unblocks(rid, &event) {
                        self.wake(rid);
                    }
                    return;
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(rid, attempt, error = %e, "cannot record an orchestration event; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Whether a recorded `event` may let the instance go on: false only
    /// for an activity result while other results of its fan-in are still
    /// out.
    pub(super) fn unblocks(&self, rid: i64, event: &HistoryEvent) -> bool {
        let step = match event {
            HistoryEvent::TaskCompleted { step, .. } | HistoryEvent::TaskFailed { step, .. } => *step,
            _ => return true,
        };
        match self.inner.waiting_for_steps.get_mut(&rid) {
            Some(mut outstanding) => {
                outstanding.remove(&step);
                outstanding.is_empty()
            }
            None => true,
        }
    }

    pub(super) async fn timer_loop(self) {
        loop {
            let next = self.inner.timers.lock().peek().map(|t| t.0.fire_ms);
            let now = crate::util::now_ms();
            match next {
                None => self.inner.timer_wake.notified().await,
                Some(at) if at > now => {
                    let wait = Duration::from_millis((at - now) as u64);
                    let _ = tokio::time::timeout(wait, self.inner.timer_wake.notified()).await;
                }
                Some(_) => {
                    let mut due = Vec::new();
                    {
                        let mut heap = self.inner.timers.lock();
                        while heap.peek().is_some_and(|t| t.0.fire_ms <= now) {
                            if let Some(Reverse(t)) = heap.pop() {
                                self.inner.armed.remove(&(t.rid, t.generation, t.step));
                                due.push(t);
                            }
                        }
                    }
                    for t in due {
                        self.spawn(|this| async move {
                            let event = HistoryEvent::TimerFired {
                                step: t.step,
                                fire_at_ms: t.fire_ms,
                            };
                            this.deliver(t.rid, t.generation, None, event).await;
                        });
                    }
                }
            }
        }
    }
}
