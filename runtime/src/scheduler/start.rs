//! Starting an attempt: taking the task from the queue, its payload, an
//! instance, and `Running` recorded.
//!
//! A task still `Enqueued` when its slot comes goes `Dequeued` first. When
//! an instance is at hand (a warm or provisioned one, or a cold start that
//! needs no wait) that move and `Running` are written together, in one
//! commit; otherwise the task is taken from the queue alone, so that it
//! reads `Dequeued` while it waits for an instance, as FC shows it. On a
//! shared store every commit is a round trip to the database, and one per
//! task less is what a node's throughput is made of.

use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;

use super::queue::QueuedTask;
use super::{AsyncPolicy, INSTANCE_WAIT, Scheduler};
use crate::engine::{InvocationContext, StopHandle};
use crate::pool::{Lease, PooledInvocation};
use crate::registry::ResolvedFunction;
use crate::store::{Applied, TaskUpdate, Transition};
use crate::tasks::TaskState;

/// What starting an attempt came to.
pub(super) enum Started {
    /// `Running` is recorded; the guest may run.
    Running { lease: Lease, payload: Bytes },
    /// `Running` is recorded but no instance could be had: the attempt
    /// failed with this.
    NoInstance { failed: PooledInvocation, payload: Bytes },
    /// Nothing to run: stopped, expired or invalidated meanwhile, or put
    /// back for later.
    Nothing,
}

impl Scheduler {
    /// Takes `t` from the queue if it is still there, reads its payload if
    /// `payload` is none, gets an instance and records `Running`. `t`'s
    /// state follows, so that a task put back for later is put back as it
    /// is in the store.
    pub(super) async fn start_attempt(
        &self,
        t: &mut QueuedTask,
        payload: Option<Bytes>,
        policy: &AsyncPolicy,
        resolved: &ResolvedFunction,
        ctx: &InvocationContext,
        stop: &StopHandle,
    ) -> Started {
        let mut payload = payload;
        let mut failed_at_once = None;
        if t.state == TaskState::Enqueued {
            match self.inner.pool.acquire(resolved, ctx, INSTANCE_WAIT).now_or_never() {
                Some(Ok(lease)) => return self.dequeue_and_run(t, payload, policy, lease).await,
                Some(Err(e)) => failed_at_once = Some(e),
                None => {}
            }
            match self.take_from_queue(t, payload.is_none(), policy).await {
                Some(read) => payload = payload.or(read),
                None => return Started::Nothing,
            }
        }
        let payload = match payload {
            Some(p) => p,
            None => match self.inner.store.task_payload(t.seq).await {
                Ok(Some(p)) => p,
                Ok(None) => return Started::Nothing,
                Err(e) => {
                    tracing::error!(seq = t.seq, error = %e, "cannot load task payload; requeueing");
                    self.enqueue_after(t.clone(), Duration::from_secs(1));
                    return Started::Nothing;
                }
            },
        };
        let lease = match failed_at_once {
            Some(e) => Err(e),
            None => tokio::select! {
                lease = self.inner.pool.acquire(resolved, ctx, INSTANCE_WAIT) => lease,
                _ = stop.stopped() => return Started::Nothing,
            },
        };
        match lease {
            Ok(lease) => self.record_running(t, lease, payload).await,
            Err(e) => {
                // No instance could be made (initializer failure, ...): this
                // attempt failed like any other.
                let running = Transition::new(
                    t.seq,
                    &[TaskState::Dequeued, TaskState::Retrying],
                    TaskState::Running,
                    "attempt started; no instance could be created",
                )
                .fenced(t.fence);
                match self.inner.store.transition(running).await {
                    Ok(Some(_)) => Started::NoInstance {
                        failed: PooledInvocation::failed(e),
                        payload,
                    },
                    _ => Started::Nothing,
                }
            }
        }
    }

    /// `Dequeued` and `Running` in one commit, with `lease` at hand.
    async fn dequeue_and_run(
        &self,
        t: &QueuedTask,
        payload: Option<Bytes>,
        policy: &AsyncPolicy,
        lease: Lease,
    ) -> Started {
        let writes = vec![
            self.dequeue_transition(t, payload.is_none(), policy),
            running_transition(t, &lease),
        ];
        let outcomes = match self.inner.store.transition_many(writes).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(seq = t.seq, error = %e, "cannot take the task from the queue; requeueing");
                lease.release();
                self.enqueue_after(t.clone(), Duration::from_secs(1));
                return Started::Nothing;
            }
        };
        let mut outcomes = outcomes.into_iter();
        let (dequeued, running) = (outcomes.next().flatten(), outcomes.next().flatten());
        match (dequeued, running) {
            (Some(d), Some(_)) => match payload.or(d.row.payload) {
                Some(payload) => Started::Running { lease, payload },
                None => {
                    lease.release();
                    Started::Nothing
                }
            },
            (dequeued, _) => {
                lease.release();
                if let Some(d) = dequeued {
                    self.expired(&d);
                }
                Started::Nothing
            }
        }
    }

    /// Takes `t` from the queue on its own (`Dequeued`, or `Expired` when
    /// too old). Answers the payload read (when `want_payload`), or none
    /// when the task is not to run.
    pub(super) async fn take_from_queue(
        &self,
        t: &mut QueuedTask,
        want_payload: bool,
        policy: &AsyncPolicy,
    ) -> Option<Option<Bytes>> {
        let tr = self.dequeue_transition(t, want_payload, policy);
        match self.inner.store.transition(tr).await {
            Ok(Some(applied)) if applied.state == TaskState::Dequeued => {
                t.state = TaskState::Dequeued;
                Some(applied.row.payload)
            }
            Ok(Some(applied)) => {
                self.expired(&applied);
                None
            }
            // Stopped or invalidated while queued.
            Ok(None) => None,
            Err(e) => {
                // The store failed: put the task back and try later.
                tracing::error!(seq = t.seq, error = %e, "dequeue failed; requeueing");
                self.enqueue_after(t.clone(), Duration::from_millis(200));
                None
            }
        }
    }

    /// Counts a task that ended when it was taken from the queue.
    fn expired(&self, applied: &Applied) {
        if applied.state.is_terminal() {
            self.count_finished(applied.state);
        }
    }

    /// `Enqueued` → `Dequeued`, or `Expired` when the task is older than
    /// the function's `maxAsyncEventAgeInSeconds`.
    fn dequeue_transition(&self, t: &QueuedTask, want_payload: bool, policy: &AsyncPolicy) -> Transition {
        let max_age = policy.max_event_age_s;
        let now = crate::util::now_ms();
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
        tr.want_payload = want_payload;
        tr.fenced(t.fence)
    }

    /// Records `Running` for `t` on `lease`.
    async fn record_running(&self, t: &QueuedTask, lease: Lease, payload: Bytes) -> Started {
        match self.inner.store.transition(running_transition(t, &lease)).await {
            Ok(Some(_)) => Started::Running { lease, payload },
            Ok(None) => {
                lease.release();
                Started::Nothing
            }
            Err(e) => {
                tracing::error!(seq = t.seq, error = %e, "cannot record Running; requeueing");
                lease.release();
                self.enqueue_after(t.clone(), Duration::from_secs(1));
                Started::Nothing
            }
        }
    }
}

/// `Dequeued`/`Retrying` → `Running` on `lease`'s instance.
fn running_transition(t: &QueuedTask, lease: &Lease) -> Transition {
    let detail = format!(
        "attempt {} on instance {} ({} start)",
        t.attempts + 1,
        lease.instance_id(),
        lease.start().as_str()
    );
    Transition::new(
        t.seq,
        &[TaskState::Dequeued, TaskState::Retrying],
        TaskState::Running,
        detail,
    )
    .with(TaskUpdate {
        instance_id: Some(lease.instance_id().to_string()),
        ..Default::default()
    })
    .fenced(t.fence)
}
