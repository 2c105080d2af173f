//! The dispatcher: takes ready tasks off the queue in batches, moves them
//! to `Dequeued` (or `Expired`) in one commit, and starts their runners.

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::queue::QueuedTask;
use super::{AsyncPolicy, DEQUEUE_BATCH, Scheduler};
use crate::store::Transition;
use crate::tasks::TaskState;

impl Scheduler {
    pub(super) async fn dispatch_loop(self) {
        loop {
            let Ok(permit) = self.inner.global.clone().acquire_owned().await else {
                return;
            };
            let first = loop {
                let notified = self.inner.wake.notified();
                let next = self.inner.queue.lock().pop_ready(self.inner.config.per_function);
                if let Some(t) = next {
                    break t;
                }
                notified.await;
            };
            let mut batch = vec![(first, permit)];
            while batch.len() < DEQUEUE_BATCH {
                let Ok(p) = self.inner.global.clone().try_acquire_owned() else {
                    break;
                };
                let next = self.inner.queue.lock().pop_ready(self.inner.config.per_function);
                match next {
                    Some(t) => batch.push((t, p)),
                    None => break,
                }
            }
            let this = self.clone();
            tokio::spawn(async move { this.dequeue(batch).await });
        }
    }

    /// Moves a batch to `Dequeued` (or `Expired`) in one commit and starts
    /// a runner for each task that is still wanted.
    pub(super) async fn dequeue(&self, batch: Vec<(QueuedTask, OwnedSemaphorePermit)>) {
        let now = crate::util::now_ms();
        let mut transitions = Vec::new();
        let policies: Vec<AsyncPolicy> = batch.iter().map(|(t, _)| self.task_policy(t)).collect();
        for ((t, _), policy) in batch.iter().zip(&policies) {
            if t.state != TaskState::Enqueued {
                continue;
            }
            let max_age = policy.max_event_age_s;
            let expired = max_age.is_some_and(|age| now - t.created_ms > age as i64 * 1000);
            let detail = match max_age {
                Some(age) if expired => format!("older than maxAsyncEventAgeInSeconds ({age} s) when its turn came"),
                _ => "taken from the queue; waiting for an instance".to_string(),
            };
            let mut tr = Transition::deciding(t.seq, detail, move |row| {
                (row.status == TaskState::Enqueued).then_some(if expired {
                    TaskState::Expired
                } else {
                    TaskState::Dequeued
                })
            });
            tr.want_payload = true;
            transitions.push(tr.fenced(t.fence));
        }
        let mut outcomes = match self.inner.store.transition_many(transitions).await {
            Ok(o) => o.into_iter(),
            Err(e) => {
                // The store failed: put the tasks back and try later.
                tracing::error!(error = %e, "dequeue failed; requeueing the batch");
                tokio::time::sleep(Duration::from_millis(200)).await;
                for (t, _) in batch {
                    self.inner.queue.lock().done(&t.key());
                    self.enqueue(t);
                }
                return;
            }
        };
        for ((mut t, permit), policy) in batch.into_iter().zip(policies) {
            let payload = if t.state == TaskState::Enqueued {
                match outcomes.next().flatten() {
                    Some(applied) if applied.state == TaskState::Dequeued => applied.row.payload,
                    Some(applied) => {
                        self.count_finished(applied.state);
                        self.finish(&t);
                        continue;
                    }
                    None => {
                        // Stopped or invalidated while queued.
                        self.finish(&t);
                        continue;
                    }
                }
            } else {
                // Taken from the queue already (by a claim, which read the
                // payload), or recovered or retrying (read when it runs).
                t.payload.take()
            };
            let this = self.clone();
            tokio::spawn(async move {
                this.run(t.clone(), payload, policy).await;
                this.finish(&t);
                drop(permit);
            });
        }
    }

    pub(super) fn finish(&self, t: &QueuedTask) {
        self.inner.running.remove(&t.seq);
        self.inner.held.remove(&t.seq);
        self.inner.queue.lock().done(&t.key());
        self.inner.wake.notify_one();
        // Room for another claim (shared store).
        self.inner.claim_wake.notify_one();
    }
}
