//! The scheduler: durable async invocations (FC's task mode).
//!
//! A submitted task is written to the store (`Enqueued`) before the caller
//! gets its 202, then queued in memory. One dispatcher takes tasks in
//! round-robin over functions, under a global concurrency limit and a
//! per-function one, and starts a runner per task. The runner takes the
//! task from the queue (`Dequeued`; `Expired` when too old) and records
//! `Running` — in one commit when an instance is at hand, else the first
//! before it waits for an instance (still `Dequeued`) — invokes, and records
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

mod claims;
mod delivery;
mod destination;
mod dispatch;
pub mod policy;
mod queue;
mod recovery;
mod runner;
mod start;

use queue::{Queue, QueuedTask};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use crate::cluster::Cluster;
use crate::engine::StopHandle;
use crate::pool::Pool;
use crate::registry::{ConfigTable, Registry};
use crate::store::{NewTask, Store, StoreError, TaskRow, Transition};
use crate::tasks::{TaskKind, TaskState, new_invocation_id, valid_invocation_id};
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

type FnKey = (String, String);

/// A task submission.
#[derive(Debug, Clone)]
pub struct Submission {
    pub service: String,
    pub function: String,
    pub qualifier: String,
    /// The caller's id; a fresh one when `None`.
    pub invocation_id: Option<String>,
    pub stateful: bool,
    pub kind: TaskKind,
    pub payload: Bytes,
    pub request_id: String,
    pub detail: String,
    /// How long the task waits before it may run (FC's `X-Fc-Async-Delay`).
    pub delay: Duration,
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
    /// The nodes sharing the store (a cluster of one on SQLite).
    cluster: Cluster,
    /// Lease tokens of the tasks this node has claimed, by seq (shared
    /// store): renewed while the tasks are queued or run here.
    held: DashMap<i64, i64>,
    /// Tasks whose lease this node lost while their guest ran: their
    /// outcome is dropped (another node runs them now).
    lost: DashMap<i64, ()>,
    /// Wakes the claim loop (shared store).
    claim_wake: Notify,
    stats: SchedulerStats,
    activity_listener: std::sync::OnceLock<ActivityListener>,
}

/// How long a task waits for an instance: as long as it takes (it can be
/// stopped meanwhile).
const INSTANCE_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

impl Scheduler {
    /// Recovers unfinished tasks and starts the dispatcher and the janitor.
    pub async fn start(
        store: Store,
        registry: Registry,
        pool: Pool,
        cluster: Cluster,
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
                cluster,
                held: DashMap::new(),
                lost: DashMap::new(),
                claim_wake: Notify::new(),
                stats: SchedulerStats::default(),
                activity_listener: std::sync::OnceLock::new(),
            }),
        };
        if let Some(shared) = scheduler.inner.store.shared().cloned() {
            // Tasks are claimed from the shared queue; those a node left
            // unfinished come back when their leases lapse.
            scheduler.start_claiming(shared);
        } else {
            let recovered = scheduler.inner.store.active_tasks().await?;
            let this = scheduler.clone();
            tokio::spawn(async move { this.recover(recovered).await });
        }
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

    /// The policy a task runs under, read once when its attempt starts: an
    /// activity is never retried or delivered here (its orchestration's
    /// retry policy applies between attempts).
    fn task_policy(&self, t: &QueuedTask) -> AsyncPolicy {
        if t.kind == TaskKind::Activity {
            return AsyncPolicy {
                stateful: true,
                max_retries: 0,
                ..AsyncPolicy::default()
            };
        }
        self.policy(&t.service, &t.function, &t.qualifier)
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
            due_ms: if s.delay.is_zero() {
                0
            } else {
                created_ms + s.delay.as_millis() as i64
            },
            detail: s.detail,
        };
        let seq = match self.inner.store.insert_task(task).await {
            Ok(seq) => seq,
            Err(StoreError::Duplicate(msg)) => return Err(SchedulerError::Duplicate(msg)),
            Err(e) => return Err(e.into()),
        };
        self.inner.stats.submitted.fetch_add(1, Ordering::Relaxed);
        let queued = QueuedTask {
            seq,
            service: s.service,
            function: s.function,
            qualifier: s.qualifier,
            invocation_id: id.clone(),
            request_id: s.request_id,
            created_ms,
            attempts: 0,
            state: TaskState::Enqueued,
            kind: s.kind,
            fence: None,
            payload: None,
        };
        self.queue_new(queued, s.delay);
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
        let queued = QueuedTask {
            seq,
            service: task.service.clone(),
            function: task.function.clone(),
            qualifier: task.qualifier.clone(),
            invocation_id: task.invocation_id.clone(),
            request_id: task.request_id.clone(),
            created_ms: task.created_ms,
            attempts: 0,
            state: TaskState::Enqueued,
            kind: task.kind,
            fence: None,
            payload: None,
        };
        self.queue_new(queued, Duration::ZERO);
    }

    /// Tells the activity listener about a task that just finished.
    fn activity_finished(&self, row: &TaskRow) {
        if row.kind != TaskKind::Activity || !row.status.is_terminal() {
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
                    self.inner.cluster.stop_task(current.seq).await;
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
                        // The guest may run on another node.
                        self.inner.cluster.stop_task(current.seq).await;
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
            if *kind == TaskKind::Activity
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

    // ---- recovery and housekeeping ------------------------------------------
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
