//! The scheduler: durable async invocations (FC's task mode).
//!
//! A submitted task is written to the store (`Enqueued`) before the caller
//! gets its 202, then queued in memory. One dispatcher takes tasks in
//! round-robin over functions, under a global concurrency limit and a
//! per-function one, and moves each batch to `Dequeued` in one commit
//! (expired ones to `Expired`). A runner per task waits for an instance
//! from the pool (still `Dequeued`), records `Running`, invokes, and records
//! the outcome: `Succeeded`, `Failed`, `Stopped`, or `Retrying` with an
//! exponential, jittered backoff. Destinations are delivered in the same
//! commit as the outcome.
//!
//! Every transition is committed before it is acted on, and decided
//! against the stored state (check-and-set), so a Stop or a function
//! deletion racing a runner always resolves to one legal history. On start,
//! tasks left non-terminal by a previous process are recovered: queued ones
//! run, a `Running` one counts as an attempt and is retried or failed per
//! policy, a `Stopping` one becomes `Stopped`.

mod destination;
pub mod policy;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::engine::{InvocationContext, InvokeError, StopHandle};
use crate::pool::{Pool, PooledInvocation};
use crate::registry::{ConfigTable, Registry};
use crate::store::{FollowUp, NewTask, Store, StoreError, TaskRow, TaskUpdate, Transition};
use crate::tasks::{TaskState, new_invocation_id, valid_invocation_id};
pub use policy::AsyncPolicy;

/// Scheduler settings (from `wasmfc serve` flags).
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Tasks in flight (dequeued or running) across all functions.
    pub concurrency: usize,
    /// Tasks in flight per function.
    pub per_function: usize,
    /// Delay before the first retry; doubles per retry, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Finished tasks are kept this long, then purged.
    pub retention: Duration,
    /// Largest destination record (FC's async payload limit, 128 KB).
    pub destination_payload_limit: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SchedulerConfig {
            concurrency: 4 * cores,
            per_function: 4 * cores,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            retention: Duration::from_secs(3 * 24 * 3600),
            destination_payload_limit: 128 << 10,
        }
    }
}

/// A task waiting in the in-memory queue (the store holds the rest).
#[derive(Debug, Clone)]
struct QueuedTask {
    seq: i64,
    service: String,
    function: String,
    qualifier: String,
    invocation_id: String,
    request_id: String,
    created_ms: i64,
    attempts: u32,
    /// `Enqueued`, or `Dequeued`/`Retrying` for tasks that skip the
    /// dequeue step (recovered, or back from a backoff).
    state: TaskState,
    /// The payload is a recorded HTTP request for an HTTP function
    /// (kind [`HTTP_KIND`]), not an event.
    http: bool,
    /// An orchestration's activity (kind [`ACTIVITY_KIND`]): never retried
    /// here (the orchestration's retry policy decides), no destinations,
    /// and its outcome goes to the activity listener.
    activity: bool,
}

/// The task kind of an async invocation through an HTTP trigger.
pub const HTTP_KIND: &str = "http";
/// The task kind of an orchestration's activity call.
pub const ACTIVITY_KIND: &str = "activity";

/// A finished activity task, as the orchestration engine hears of it.
#[derive(Debug, Clone)]
pub struct ActivityOutcome {
    pub invocation_id: String,
    pub state: TaskState,
    pub result: Option<Bytes>,
    pub error: String,
}

/// Called with every activity task that reaches a terminal state.
pub type ActivityListener = Arc<dyn Fn(ActivityOutcome) + Send + Sync>;

impl QueuedTask {
    fn from_row(row: &TaskRow) -> QueuedTask {
        QueuedTask {
            seq: row.seq,
            service: row.service.clone(),
            function: row.function.clone(),
            qualifier: row.qualifier.clone(),
            invocation_id: row.invocation_id.clone(),
            request_id: row.request_id.clone(),
            created_ms: row.created_ms,
            attempts: row.attempts,
            state: row.status,
            http: row.kind == HTTP_KIND,
            activity: row.kind == ACTIVITY_KIND,
        }
    }

    fn key(&self) -> FnKey {
        (self.service.clone(), self.function.clone())
    }
}

type FnKey = (String, String);

/// Ready tasks: FIFO per function, functions served round-robin, so one
/// function's backlog never blocks another's.
#[derive(Default)]
struct Queue {
    by_fn: HashMap<FnKey, VecDeque<QueuedTask>>,
    ring: VecDeque<FnKey>,
    in_flight: HashMap<FnKey, usize>,
    len: usize,
}

impl Queue {
    fn push(&mut self, t: QueuedTask) {
        let key = t.key();
        let q = self.by_fn.entry(key.clone()).or_default();
        if q.is_empty() {
            self.ring.push_back(key);
        }
        q.push_back(t);
        self.len += 1;
    }

    /// The next task whose function is under its in-flight limit.
    fn pop_ready(&mut self, per_function: usize) -> Option<QueuedTask> {
        for _ in 0..self.ring.len() {
            let key = self.ring.pop_front()?;
            let busy = self.in_flight.get(&key).copied().unwrap_or(0);
            let Some(q) = self.by_fn.get_mut(&key) else { continue };
            if busy < per_function
                && let Some(t) = q.pop_front()
            {
                self.len -= 1;
                *self.in_flight.entry(key.clone()).or_default() += 1;
                if q.is_empty() {
                    self.by_fn.remove(&key);
                } else {
                    self.ring.push_back(key);
                }
                return Some(t);
            }
            self.ring.push_back(key);
        }
        None
    }

    fn done(&mut self, key: &FnKey) {
        if let Some(n) = self.in_flight.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(key);
            }
        }
    }
}

/// A task submission.
#[derive(Debug, Clone)]
pub struct Submission {
    pub service: String,
    pub function: String,
    pub qualifier: String,
    /// The caller's id; a fresh one when `None`.
    pub invocation_id: Option<String>,
    pub stateful: bool,
    pub kind: String,
    pub payload: Bytes,
    pub request_id: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(
        "invalid invocation id '{0}': it must start with a letter or underscore, contain only letters, digits, underscores and hyphens, and be at most 128 characters"
    )]
    InvalidId(String),
    #[error("{0}")]
    Duplicate(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a Stop request found and did.
#[derive(Debug, Clone)]
pub enum StopOutcome {
    /// It was running; it is `Stopping` and will be `Stopped` once the
    /// guest is interrupted.
    Stopping(TaskRow),
    /// It had not run: it is `Stopped`.
    Stopped(TaskRow),
    AlreadyFinished(TaskState),
    NotFound,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub submitted: AtomicU64,
    pub finished: DashMap<&'static str, AtomicU64>,
}

/// The scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    pool: Pool,
    config: SchedulerConfig,
    queue: Mutex<Queue>,
    wake: Notify,
    global: Arc<Semaphore>,
    /// Stop handles of tasks between dequeue and completion, by seq.
    running: DashMap<i64, StopHandle>,
    stats: SchedulerStats,
    activity_listener: std::sync::OnceLock<ActivityListener>,
}

/// How long a task waits for an instance: as long as it takes (it can be
/// stopped meanwhile).
const INSTANCE_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Most tasks moved to `Dequeued` in one commit.
const DEQUEUE_BATCH: usize = 256;

impl Scheduler {
    /// Recovers unfinished tasks and starts the dispatcher and the janitor.
    pub fn start(
        store: Store,
        registry: Registry,
        pool: Pool,
        config: SchedulerConfig,
    ) -> Result<Scheduler, StoreError> {
        let scheduler = Scheduler {
            inner: Arc::new(Inner {
                global: Arc::new(Semaphore::new(config.concurrency.max(1))),
                store,
                registry,
                pool,
                config,
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                running: DashMap::new(),
                stats: SchedulerStats::default(),
                activity_listener: std::sync::OnceLock::new(),
            }),
        };
        let recovered = scheduler.inner.store.active_tasks()?;
        let this = scheduler.clone();
        tokio::spawn(async move { this.recover(recovered).await });
        let this = scheduler.clone();
        tokio::spawn(async move { this.dispatch_loop().await });
        let this = scheduler.clone();
        tokio::spawn(async move { this.janitor().await });
        Ok(scheduler)
    }

    pub fn stats(&self) -> &SchedulerStats {
        &self.inner.stats
    }

    pub fn queued(&self) -> usize {
        self.inner.queue.lock().len
    }

    pub fn in_flight(&self) -> usize {
        self.inner.running.len()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The async policy for invocations of `function` through `qualifier`.
    pub fn policy(&self, service: &str, function: &str, qualifier: &str) -> AsyncPolicy {
        self.inner
            .registry
            .get_function_config(ConfigTable::AsyncInvoke, service, function, qualifier)
            .map(|doc| AsyncPolicy::from_doc(&doc))
            .unwrap_or_default()
    }

    /// Stores a task and queues it; returns its seq and invocation id once
    /// the task is durable.
    pub async fn submit(&self, s: Submission) -> Result<(i64, String), SchedulerError> {
        let id = match s.invocation_id {
            Some(id) if !valid_invocation_id(&id) => return Err(SchedulerError::InvalidId(id)),
            Some(id) => id,
            None => new_invocation_id(),
        };
        let created_ms = crate::util::now_ms();
        let http = s.kind == HTTP_KIND;
        let activity = s.kind == ACTIVITY_KIND;
        let task = NewTask {
            service: s.service.clone(),
            function: s.function.clone(),
            qualifier: s.qualifier.clone(),
            invocation_id: id.clone(),
            stateful: s.stateful,
            kind: s.kind,
            payload: s.payload,
            request_id: s.request_id.clone(),
            created_ms,
            detail: s.detail,
        };
        let seq = match self.inner.store.insert_task(task).await {
            Ok(seq) => seq,
            Err(StoreError::Duplicate(msg)) => return Err(SchedulerError::Duplicate(msg)),
            Err(e) => return Err(e.into()),
        };
        self.inner.stats.submitted.fetch_add(1, Ordering::Relaxed);
        self.enqueue(QueuedTask {
            seq,
            service: s.service,
            function: s.function,
            qualifier: s.qualifier,
            invocation_id: id.clone(),
            request_id: s.request_id,
            created_ms,
            attempts: 0,
            state: TaskState::Enqueued,
            http,
            activity,
        });
        Ok((seq, id))
    }

    /// Sets who hears of finished activity tasks (the orchestration engine).
    pub fn set_activity_listener(&self, listener: ActivityListener) {
        let _ = self.inner.activity_listener.set(listener);
    }

    /// Queues a task another store write inserted (an orchestration commit
    /// inserts its activity tasks in its own transaction).
    pub fn enqueue_inserted(&self, seq: i64, task: &NewTask) {
        self.inner.stats.submitted.fetch_add(1, Ordering::Relaxed);
        self.enqueue(QueuedTask {
            seq,
            service: task.service.clone(),
            function: task.function.clone(),
            qualifier: task.qualifier.clone(),
            invocation_id: task.invocation_id.clone(),
            request_id: task.request_id.clone(),
            created_ms: task.created_ms,
            attempts: 0,
            state: TaskState::Enqueued,
            http: task.kind == HTTP_KIND,
            activity: task.kind == ACTIVITY_KIND,
        });
    }

    /// Tells the activity listener about a task that just finished.
    fn activity_finished(&self, row: &TaskRow) {
        if row.kind != ACTIVITY_KIND || !row.status.is_terminal() {
            return;
        }
        if let Some(listener) = self.inner.activity_listener.get() {
            listener(ActivityOutcome {
                invocation_id: row.invocation_id.clone(),
                state: row.status,
                result: row.result.clone(),
                error: row.error.clone(),
            });
        }
    }

    fn enqueue(&self, t: QueuedTask) {
        self.inner.queue.lock().push(t);
        self.inner.wake.notify_one();
    }

    /// Stops a task: a queued one at once, a running one by interrupting
    /// its guest. `row` is the task as the caller just read it; the outcome
    /// carries it as it is after the stop, so the caller need not read again.
    pub async fn stop(&self, row: TaskRow) -> Result<StopOutcome, StoreError> {
        use TaskState::*;
        let (service, function, invocation_id) = (row.service.clone(), row.function.clone(), row.invocation_id.clone());
        let mut row = Some(row);
        // A few rounds: the task may move between our read and our write.
        for _ in 0..5 {
            let current = match row.take() {
                Some(r) => r,
                None => match self
                    .inner
                    .store
                    .get_task(&service, &function, &invocation_id, false)
                    .await?
                {
                    Some(r) => r,
                    None => return Ok(StopOutcome::NotFound),
                },
            };
            match current.status {
                s if s.is_terminal() => return Ok(StopOutcome::AlreadyFinished(s)),
                Stopping => {
                    self.signal(current.seq);
                    return Ok(StopOutcome::Stopping(current));
                }
                Enqueued | Dequeued | Retrying => {
                    let t = Transition::new(
                        current.seq,
                        &[Enqueued, Dequeued, Retrying],
                        Stopped,
                        "stopped by request before it ran",
                    );
                    if let Some(applied) = self.inner.store.transition(t).await? {
                        self.signal(current.seq);
                        self.count_finished(Stopped);
                        self.activity_finished(&applied.row);
                        return Ok(StopOutcome::Stopped(applied.row));
                    }
                }
                Running => {
                    let t = Transition::new(
                        current.seq,
                        &[Running],
                        Stopping,
                        "stop requested; interrupting the guest",
                    );
                    if let Some(applied) = self.inner.store.transition(t).await? {
                        self.signal(current.seq);
                        return Ok(StopOutcome::Stopping(applied.row));
                    }
                }
                _ => {}
            }
        }
        match self
            .inner
            .store
            .get_task(&service, &function, &invocation_id, false)
            .await?
        {
            Some(r) if r.status.is_terminal() => Ok(StopOutcome::AlreadyFinished(r.status)),
            Some(r) => Ok(StopOutcome::Stopping(r)),
            None => Ok(StopOutcome::NotFound),
        }
    }

    fn signal(&self, seq: i64) {
        if let Some(h) = self.inner.running.get(&seq) {
            h.stop();
        }
    }

    /// The function was deleted: its unfinished tasks become `Invalid`
    /// (they stay readable) and running ones are interrupted.
    pub async fn invalidate_function(&self, service: &str, function: &str) -> Result<usize, StoreError> {
        const DETAIL: &str = "the function was deleted";
        let rows = self
            .inner
            .store
            .invalidate_function_tasks(service, function, DETAIL)
            .await?;
        for (seq, kind, invocation_id) in &rows {
            self.signal(*seq);
            self.count_finished(TaskState::Invalid);
            // An orchestration waiting on this activity hears that it failed.
            if kind == ACTIVITY_KIND
                && let Some(listener) = self.inner.activity_listener.get()
            {
                listener(ActivityOutcome {
                    invocation_id: invocation_id.clone(),
                    state: TaskState::Invalid,
                    result: None,
                    error: DETAIL.into(),
                });
            }
        }
        Ok(rows.len())
    }

    fn count_finished(&self, state: TaskState) {
        self.inner
            .stats
            .finished
            .entry(state.as_str())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    // ---- dispatch --------------------------------------------------------

    async fn dispatch_loop(self) {
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
    async fn dequeue(&self, batch: Vec<(QueuedTask, OwnedSemaphorePermit)>) {
        let now = crate::util::now_ms();
        let mut transitions = Vec::new();
        for (t, _) in &batch {
            if t.state != TaskState::Enqueued {
                continue;
            }
            let max_age = self.policy(&t.service, &t.function, &t.qualifier).max_event_age_s;
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
            transitions.push(tr);
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
        for (t, permit) in batch {
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
                None
            };
            let this = self.clone();
            tokio::spawn(async move {
                this.run(t.clone(), payload).await;
                this.finish(&t);
                drop(permit);
            });
        }
    }

    fn finish(&self, t: &QueuedTask) {
        self.inner.running.remove(&t.seq);
        self.inner.queue.lock().done(&t.key());
        self.inner.wake.notify_one();
    }

    /// Runs one attempt of a dequeued (or retrying) task.
    async fn run(&self, t: QueuedTask, payload: Option<Bytes>) {
        use TaskState::*;
        let stop = StopHandle::new();
        self.inner.running.insert(t.seq, stop.clone());
        let store = &self.inner.store;
        let payload = match payload {
            Some(p) => p,
            None => match store.task_payload(t.seq).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(seq = t.seq, error = %e, "cannot load task payload; requeueing");
                    return self.retry_later(t, Duration::from_secs(1));
                }
            },
        };
        let resolved = match self.inner.registry.resolve(&t.service, Some(&t.qualifier), &t.function) {
            Ok(r) => r,
            Err(e) => {
                let tr = Transition::new(t.seq, &[Dequeued, Retrying], Invalid, format!("cannot run: {e}")).with(
                    TaskUpdate {
                        error: Some(e.to_string()),
                        ..Default::default()
                    },
                );
                if let Ok(Some(mut applied)) = store.transition(tr).await {
                    self.count_finished(Invalid);
                    applied.row.error = format!("cannot run: {e}");
                    self.activity_finished(&applied.row);
                }
                return;
            }
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
        let lease = tokio::select! {
            lease = self.inner.pool.acquire(&resolved, &acquire_ctx, INSTANCE_WAIT) => lease,
            _ = stop.stopped() => return,
        };
        let lease = match lease {
            Ok(l) => l,
            Err(e) => {
                // No instance could be made (initializer failure, ...): this
                // attempt failed like any other.
                let failed = PooledInvocation::failed(e);
                let running = Transition::new(
                    t.seq,
                    &[Dequeued, Retrying],
                    Running,
                    "attempt started; no instance could be created",
                );
                if let Ok(Some(_)) = store.transition(running).await {
                    self.complete(t, failed).await;
                }
                return;
            }
        };
        let detail = format!(
            "attempt {} on instance {} ({} start)",
            t.attempts + 1,
            lease.instance_id(),
            lease.start().as_str()
        );
        let running = Transition::new(t.seq, &[Dequeued, Retrying], Running, detail).with(TaskUpdate {
            instance_id: Some(lease.instance_id().to_string()),
            ..Default::default()
        });
        match store.transition(running).await {
            Ok(Some(_)) => {}
            Ok(None) => return lease.release(),
            Err(e) => {
                tracing::error!(seq = t.seq, error = %e, "cannot record Running; requeueing");
                lease.release();
                return self.retry_later(t, Duration::from_secs(1));
            }
        }
        // The deadline starts when the guest does, not when the task queued.
        let outcome = if t.http {
            lease.invoke_http(ctx(stop), payload).await
        } else {
            lease.invoke(ctx(stop), payload).await
        };
        self.inner.running.remove(&t.seq);
        self.complete(t, outcome).await;
    }

    fn retry_later(&self, t: QueuedTask, after: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            this.enqueue(t);
        });
    }

    fn backoff(&self, retry: u32) -> Duration {
        let base = self.inner.config.retry_base.as_secs_f64() * 2f64.powi(retry.saturating_sub(1).min(20) as i32);
        let jittered = base * (0.5 + rand::random::<f64>() * 0.5);
        Duration::from_secs_f64(jittered.min(self.inner.config.retry_max.as_secs_f64()))
    }

    /// Records an attempt's outcome (and the destination delivery).
    async fn complete(&self, t: QueuedTask, outcome: PooledInvocation) {
        use TaskState::*;
        let policy = if t.activity {
            AsyncPolicy {
                stateful: true,
                max_retries: 0,
                ..AsyncPolicy::default()
            }
        } else {
            self.policy(&t.service, &t.function, &t.qualifier)
        };
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
                let follow = self.destination(&t, &policy, Succeeded, &inv.result, attempt).await;
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
                    let follow = self.destination(&t, &policy, Failed, &inv.result, attempt).await;
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
        .with(update);
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
                    self.retry_later(next, delay);
                } else if applied.state.is_terminal() {
                    self.count_finished(applied.state);
                    let mut row = applied.row.clone();
                    row.result = outcome_result;
                    row.error = outcome_error;
                    self.activity_finished(&row);
                }
                if let (Some(seq), Some(f)) = (applied.follow_up_seq, follow_task) {
                    self.inner.stats.submitted.fetch_add(1, Ordering::Relaxed);
                    self.enqueue(QueuedTask {
                        seq,
                        service: f.service,
                        function: f.function,
                        qualifier: f.qualifier,
                        invocation_id: f.invocation_id,
                        request_id: f.request_id,
                        created_ms: f.created_ms,
                        attempts: 0,
                        state: Enqueued,
                        http: false,
                        activity: false,
                    });
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(seq = t.seq, error = %e, "cannot record the task outcome"),
        }
    }

    /// Builds the destination delivery for an outcome, if one is configured.
    async fn destination(
        &self,
        t: &QueuedTask,
        policy: &AsyncPolicy,
        state: TaskState,
        result: &Result<Bytes, InvokeError>,
        attempts: u32,
    ) -> Option<FollowUp> {
        let arn = match state {
            TaskState::Succeeded => policy.on_success.clone()?,
            _ => policy.on_failure.clone()?,
        };
        let Some((service, qualifier, function)) = policy::parse_fc_destination(&arn) else {
            return Some(FollowUp {
                when: state,
                task: None,
                status: format!("Failed: wasmfc delivers only to function destinations (acs:fc:...), not {arn}"),
            });
        };
        let qualifier = qualifier.unwrap_or_else(|| "LATEST".into());
        if let Err(e) = self.inner.registry.resolve(&service, Some(&qualifier), &function) {
            return Some(FollowUp {
                when: state,
                task: None,
                status: format!("Failed: {e}"),
            });
        }
        let payload = self
            .inner
            .store
            .task_payload(t.seq)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let hops = destination::hops_after(&payload);
        if hops > destination::MAX_HOPS {
            return Some(FollowUp {
                when: state,
                task: None,
                status: format!(
                    "Failed: not delivered to {arn}: this chain of destinations has passed through {} already \
                     (at most {})",
                    hops - 1,
                    destination::MAX_HOPS
                ),
            });
        }
        let (response, error_type) = match result {
            Ok(out) => (String::from_utf8_lossy(out).into_owned(), ""),
            Err(e) => (
                json!({ "errorMessage": e.to_string(), "errorType": e.error_type() }).to_string(),
                e.fc_error_type(),
            ),
        };
        let outcome = destination::Outcome {
            request_id: &t.request_id,
            invocation_id: &t.invocation_id,
            function_arn: format!(
                "acs:fc:::services/{}.{}/functions/{}",
                t.service, t.qualifier, t.function
            ),
            succeeded: state == TaskState::Succeeded,
            attempts,
            request_payload: &payload,
            response_payload: response,
            error_type,
        };
        let record = destination::record(
            &outcome,
            hops,
            self.inner.config.destination_payload_limit,
            crate::util::now_ms(),
        );
        let dest_policy = self.policy(&service, &function, &qualifier);
        let id = new_invocation_id();
        Some(FollowUp {
            when: state,
            task: Some(NewTask {
                service,
                function,
                qualifier,
                invocation_id: id.clone(),
                stateful: dest_policy.stateful,
                kind: "event".into(),
                payload: Bytes::from(record),
                request_id: crate::util::new_request_id(),
                created_ms: crate::util::now_ms(),
                detail: format!(
                    "destination of {}/{} invocation {}",
                    t.service, t.function, t.invocation_id
                ),
            }),
            status: format!("Succeeded: delivered to {arn} as {id}"),
        })
    }

    // ---- recovery and housekeeping ------------------------------------------

    async fn recover(&self, rows: Vec<TaskRow>) {
        use TaskState::*;
        if rows.is_empty() {
            return;
        }
        tracing::info!(tasks = rows.len(), "recovering unfinished tasks");
        for row in rows {
            let t = QueuedTask::from_row(&row);
            match row.status {
                Enqueued | Dequeued => self.enqueue(t),
                Retrying => {
                    let wait = (row.next_run_ms - crate::util::now_ms()).max(0) as u64;
                    self.retry_later(t, Duration::from_millis(wait));
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
    async fn janitor(self) {
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

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(seq: i64, f: &str) -> QueuedTask {
        QueuedTask {
            seq,
            service: "s".into(),
            function: f.into(),
            qualifier: "LATEST".into(),
            invocation_id: format!("t{seq}"),
            request_id: String::new(),
            created_ms: 0,
            attempts: 0,
            state: TaskState::Enqueued,
            http: false,
            activity: false,
        }
    }

    #[test]
    fn queue_round_robins_and_respects_per_function_limits() {
        let mut q = Queue::default();
        for i in 0..3 {
            q.push(task(i, "a"));
        }
        q.push(task(10, "b"));
        assert_eq!(q.pop_ready(1).unwrap().seq, 0);
        // a is at its limit of 1: b goes next, then nothing.
        assert_eq!(q.pop_ready(1).unwrap().seq, 10);
        assert!(q.pop_ready(1).is_none());
        q.done(&("s".into(), "a".into()));
        assert_eq!(q.pop_ready(1).unwrap().seq, 1);
        assert_eq!(q.len, 1);
    }
}
