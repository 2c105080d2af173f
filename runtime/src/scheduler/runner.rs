//! One task attempt: wait for an instance, record `Running`, invoke, and
//! record the outcome (with a retry, a destination, or the end).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::queue::QueuedTask;
use super::start::Started;
use super::{AsyncPolicy, Scheduler};
use crate::engine::{InvocationContext, InvokeError, StopHandle};
use crate::pool::PooledInvocation;
use crate::registry::RegistryError;
use crate::store::{TaskUpdate, Transition};
use crate::tasks::{TaskKind, TaskState};

impl Scheduler {
    /// Runs one attempt of a task taken off this node's queue (still
    /// `Enqueued`, or `Dequeued`/`Retrying`) under `policy` (read when the
    /// attempt was dispatched, and used for its outcome). `payload` is the
    /// task's, when the read that found it brought it.
    pub(super) async fn run(&self, t: QueuedTask, payload: Option<Bytes>, policy: AsyncPolicy) {
        let stop = StopHandle::new();
        self.inner.running.insert(t.seq, stop.clone());
        let resolved = match self.inner.registry.resolve(&t.service, Some(&t.qualifier), &t.function) {
            Ok(r) => r,
            Err(e) => return self.cannot_run(t, payload, &policy, e).await,
        };
        let timeout = Duration::from_secs(resolved.function.spec.timeout_s);
        let ctx = |stop: StopHandle| {
            let target = crate::engine::Target {
                service: t.service.clone(),
                function: t.function.clone(),
                qualifier: t.qualifier.clone(),
                version_id: resolved.version_label(),
            };
            InvocationContext::task_attempt(
                t.request_id.clone(),
                target,
                timeout,
                t.invocation_id.clone(),
                t.attempts,
                stop,
            )
        };
        let acquire_ctx = ctx(stop.clone());
        // A copy whose state follows the start, for putting it back.
        let mut starting = t.clone();
        let started = self
            .start_attempt(&mut starting, payload, &policy, &resolved, &acquire_ctx, &stop)
            .await;
        let (lease, payload) = match started {
            Started::Running { lease, payload } => (lease, payload),
            Started::NoInstance { failed, payload } => return self.complete(t, &policy, &payload, failed).await,
            Started::Nothing => return,
        };
        // The deadline starts when the guest does, not when the task queued.
        let outcome = if t.kind == TaskKind::Http {
            lease.invoke_http(ctx(stop), payload.clone()).await
        } else {
            lease.invoke(ctx(stop), payload.clone()).await
        };
        self.inner.running.remove(&t.seq);
        if self.inner.lost.remove(&t.seq).is_some() {
            // This node lost the task's lease while the guest ran: another
            // node runs it now, and this attempt's outcome is not ours to
            // record.
            tracing::warn!(
                seq = t.seq,
                "the lease was lost during the attempt; its outcome is dropped"
            );
            return;
        }
        self.complete(t, &policy, &payload, outcome).await;
    }

    /// A task whose function cannot be resolved (deleted meanwhile) ends
    /// `Invalid` — taken from the queue first if it was still there.
    async fn cannot_run(&self, mut t: QueuedTask, payload: Option<Bytes>, policy: &AsyncPolicy, e: RegistryError) {
        use TaskState::*;
        if t.state == Enqueued && self.take_from_queue(&mut t, payload.is_none(), policy).await.is_none() {
            return;
        }
        let tr = Transition::new(t.seq, &[Dequeued, Retrying], Invalid, format!("cannot run: {e}"))
            .with(TaskUpdate {
                error: Some(e.to_string()),
                ..Default::default()
            })
            .fenced(t.fence);
        if let Ok(Some(mut applied)) = self.inner.store.transition(tr).await {
            self.count_finished(Invalid);
            applied.row.error = format!("cannot run: {e}");
            self.activity_finished(&applied.row);
        }
    }

    /// Queues `t` once `after` has passed (a backoff, a delayed task). The
    /// task's state is in the store meanwhile, so a Stop still finds it.
    pub(super) fn enqueue_after(&self, t: QueuedTask, after: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            this.enqueue(t);
        });
    }

    pub(super) fn backoff(&self, retry: u32) -> Duration {
        let base = self.inner.config.retry_base.as_secs_f64() * 2f64.powi(retry.saturating_sub(1).min(20) as i32);
        let jittered = base * (0.5 + rand::random::<f64>() * 0.5);
        Duration::from_secs_f64(jittered.min(self.inner.config.retry_max.as_secs_f64()))
    }

    /// Records an attempt's outcome (and the destination delivery, whose
    /// record carries `payload`).
    pub(super) async fn complete(
        &self,
        t: QueuedTask,
        policy: &AsyncPolicy,
        payload: &Bytes,
        outcome: PooledInvocation,
    ) {
        use TaskState::*;
        let inv = outcome.invocation;
        let mut update = TaskUpdate {
            duration_ms: Some(inv.duration.as_millis() as i64),
            fuel_consumed: inv.fuel_consumed,
            logs: Some(inv.log.clone()),
            ..Default::default()
        };
        if !inv.instance_id.is_empty() {
            update.instance_id = Some(inv.instance_id.clone());
        }
        let attempt = t.attempts + 1;
        let mut retry_at = None;
        let (outcome_result, outcome_error) = match &inv.result {
            Ok(out) => (Some(out.clone()), String::new()),
            Err(e) => (None, e.to_string()),
        };
        let (target, detail, follow_up) = match &inv.result {
            Ok(out) => {
                update.result = Some(out.clone());
                let follow = self.destination(&t, policy, payload, Succeeded, &inv.result, attempt);
                (Succeeded, format!("attempt {attempt} succeeded"), follow)
            }
            Err(InvokeError::Stopped) => (Stopped, "the guest was interrupted".to_string(), None),
            Err(e) => {
                update.error = Some(e.to_string());
                if t.attempts < policy.max_retries {
                    let delay = self.backoff(attempt);
                    let at = crate::util::now_ms() + delay.as_millis() as i64;
                    update.attempts = Some(attempt);
                    update.next_run_ms = Some(at);
                    retry_at = Some(delay);
                    (
                        Retrying,
                        format!(
                            "attempt {attempt} failed ({}): {e}; retry {attempt} of {} in {:.1}s",
                            e.error_type(),
                            policy.max_retries,
                            delay.as_secs_f64()
                        ),
                        None,
                    )
                } else {
                    let follow = self.destination(&t, policy, payload, Failed, &inv.result, attempt);
                    (
                        Failed,
                        format!("attempt {attempt} failed ({}): {e}; no retries left", e.error_type()),
                        follow,
                    )
                }
            }
        };
        let mut tr = Transition::deciding(t.seq, detail, move |row| match row.status {
            Running => Some(target),
            // A Stop arrived while the attempt ran: whatever the guest did,
            // the task ends Stopped.
            Stopping => Some(Stopped),
            _ => None,
        })
        .with(update)
        .fenced(t.fence);
        let follow_task = follow_up.as_ref().and_then(|f| f.task.clone());
        tr.follow_up = follow_up;
        match self.inner.store.transition(tr).await {
            Ok(Some(applied)) => {
                if applied.state == Retrying
                    && let Some(delay) = retry_at
                {
                    let mut next = t.clone();
                    next.attempts = attempt;
                    next.state = Retrying;
                    next.fence = None;
                    self.queue_new(next, delay);
                } else if applied.state.is_terminal() {
                    self.count_finished(applied.state);
                    let mut row = applied.row.clone();
                    row.result = outcome_result;
                    row.error = outcome_error;
                    self.activity_finished(&row);
                }
                if let (Some(seq), Some(f)) = (applied.follow_up_seq, follow_task) {
                    self.inner.stats.submitted.fetch_add(1, Ordering::Relaxed);
                    self.queue_new(
                        QueuedTask {
                            seq,
                            service: f.service,
                            function: f.function,
                            qualifier: f.qualifier,
                            invocation_id: f.invocation_id,
                            request_id: f.request_id,
                            created_ms: f.created_ms,
                            attempts: 0,
                            state: Enqueued,
                            kind: TaskKind::Event,
                            fence: None,
                            payload: None,
                        },
                        Duration::ZERO,
                    );
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(seq = t.seq, error = %e, "cannot record the task outcome"),
        }
    }
}
