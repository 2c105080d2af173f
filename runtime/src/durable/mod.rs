//! Orchestrations: durable workflows on the task engine, with the instance
//! API of Azure Durable Functions.
//!
//! An orchestration instance is a row plus an append-only history (its
//! journal) in the store. The orchestrator's code runs in *runs*: each run
//! starts the code from the top on a fresh instance, the journal
//! ([`history::Replay`]) answers every host call it has an answer for, and
//! the first call it cannot answer ends the run. The run's commit appends
//! what the code newly asked for (activity calls, timers, waits, clock
//! reads) and, in the same transaction, inserts the activity calls as tasks
//! of kind `activity`: the scheduler runs them like any stateful async
//! invocation (visible in ListStatefulAsyncInvocations, stoppable), and their
//! ids are derived from (instance, generation, step, attempt), so a step is
//! scheduled exactly once however often the code is re-run. A finished
//! activity, a fired timer or a raised event is appended to the history and
//! wakes the instance for another run.
//!
//! Nothing of a waiting instance stays in memory but its timer (if any): 100k
//! waiting orchestrations cost their rows. After a crash every instance with
//! unprocessed history runs again, armed timers are re-armed, and activity
//! results that finished but were never recorded are recorded.
//!
//! Data flow: api → durable → (store, scheduler → pool → engine).

pub mod history;
mod leases;
pub mod model;
mod outcomes;
mod runs;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use crate::cluster::Cluster;
use crate::engine::{Engine, GuestKind};
use crate::journal::Control;
use crate::registry::{CodeDir, Registry};
use crate::scheduler::Scheduler;
use crate::store::{ControlOutcome, NewOrchestration, NewTask, OrchFilter, OrchRow, Store, StoreError, TimerRow};
use crate::tasks::TaskKind;
use history::{HistoryEvent, Recorded};
use model::RuntimeStatus;

/// Errors at the orchestration boundary.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// Bad arguments (unknown orchestrator, bad instance id, ...): 400.
    #[error("{0}")]
    InvalidArgument(String),
    /// An active instance already has this id: 500 (as the extension).
    #[error("{0}")]
    AlreadyExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub use crate::journal::as_json_text;

/// The id of the task that runs attempt `attempt` of step `step`.
fn activity_task_id(rid: i64, generation: u32, step: u32, attempt: u32) -> String {
    format!("d{rid}g{generation}s{step}a{attempt}")
}

/// Inverse of [`activity_task_id`].
fn parse_task_id(id: &str) -> Option<(i64, u32, u32, u32)> {
    let rest = id.strip_prefix('d')?;
    let (rid, rest) = rest.split_once('g')?;
    let (generation, rest) = rest.split_once('s')?;
    let (step, attempt) = rest.split_once('a')?;
    Some((
        rid.parse().ok()?,
        generation.parse().ok()?,
        step.parse().ok()?,
        attempt.parse().ok()?,
    ))
}

fn activity_task(row: &OrchRow, generation: u32, step: u32, name: &str, input: &str, attempt: u32) -> NewTask {
    NewTask {
        service: row.service.clone(),
        function: name.to_string(),
        qualifier: "LATEST".into(),
        invocation_id: activity_task_id(row.rid, generation, step, attempt),
        stateful: true,
        kind: TaskKind::Activity,
        payload: Bytes::from(input.to_string()),
        request_id: crate::util::new_request_id(),
        created_ms: crate::util::now_ms(),
        due_ms: 0,
        detail: format!(
            "activity of orchestration '{}' (step {step}, attempt {})",
            row.instance_id,
            attempt + 1
        ),
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct DurableStats {
    pub started: AtomicU64,
    pub runs: AtomicU64,
    pub finished: AtomicU64,
    pub activities_scheduled: AtomicU64,
    pub activities_completed: AtomicU64,
}

/// The orchestration engine. Cheap to clone.
#[derive(Clone)]
pub struct Durable {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    engine: Engine,
    code: CodeDir,
    scheduler: Scheduler,
    /// Instances with a driver task, by rid; `true`: run once more.
    active: DashMap<i64, bool>,
    /// Activity steps an instance waits for all of (fan-in): results before
    /// the last one are recorded without waking it. Absent: any news wakes.
    waiting_for_steps: DashMap<i64, std::collections::HashSet<u32>>,
    runs: Arc<Semaphore>,
    timers: Mutex<BinaryHeap<Reverse<TimerRow>>>,
    /// The timers in `timers`, by (rid, generation, step): the sweep of a
    /// shared store does not arm one twice.
    armed: dashmap::DashSet<(i64, u32, u32)>,
    timer_wake: Notify,
    /// The nodes sharing the store (a cluster of one on SQLite).
    cluster: Cluster,
    /// Instance lease tokens of the runs under way here, by rid.
    held: DashMap<i64, i64>,
    /// Server-side waits, by instance id: woken when that instance finishes.
    waiters: DashMap<String, Arc<Notify>>,
    stats: DurableStats,
    /// The runtime the engine was started on. Instances are driven there
    /// even when an API request (served on a per-core HTTP thread) wakes
    /// them, so orchestrator runs never share a serving thread with
    /// synchronous invocations.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("active", &self.inner.active.len())
            .finish_non_exhaustive()
    }
}

impl Durable {
    /// Starts the engine: hooks into the scheduler's activity outcomes,
    /// recovers what a previous process left, starts the timer loop.
    pub async fn start(
        store: Store,
        registry: Registry,
        engine: Engine,
        code: CodeDir,
        scheduler: Scheduler,
        cluster: Cluster,
        run_concurrency: usize,
    ) -> Result<Durable, StoreError> {
        let durable = Durable {
            inner: Arc::new(Inner {
                store,
                registry,
                engine,
                code,
                scheduler,
                active: DashMap::new(),
                waiting_for_steps: DashMap::new(),
                runs: Arc::new(Semaphore::new(run_concurrency.max(1))),
                timers: Mutex::new(BinaryHeap::new()),
                armed: dashmap::DashSet::new(),
                timer_wake: Notify::new(),
                cluster,
                held: DashMap::new(),
                waiters: DashMap::new(),
                stats: DurableStats::default(),
                runtime: tokio::runtime::Handle::current(),
            }),
        };
        // The listener first, then recovery: an activity finishing in
        // between is seen by both, and delivery drops the duplicate.
        let this = durable.clone();
        durable.inner.scheduler.set_activity_listener(Arc::new(move |outcome| {
            this.spawn(|this| async move { this.on_activity(outcome).await });
        }));
        let (pending, timers, undelivered) = durable.inner.store.orch_recover().await?;
        if !pending.is_empty() || !timers.is_empty() || !undelivered.is_empty() {
            tracing::info!(
                runnable = pending.len(),
                timers = timers.len(),
                undelivered = undelivered.len(),
                "recovering orchestrations"
            );
        }
        for t in &timers {
            durable.inner.armed.insert((t.rid, t.generation, t.step));
        }
        durable.inner.timers.lock().extend(timers.into_iter().map(Reverse));
        durable.spawn(|this| async move {
            for u in undelivered {
                this.deliver(u.rid, u.generation, Some(u.task_id), u.event).await;
            }
            for rid in pending {
                this.wake(rid);
            }
        });
        durable.spawn(|this| async move { this.timer_loop().await });
        if let Some(store) = durable.inner.store.shared().cloned() {
            durable.spawn(|this| this.sweep(store));
        }
        Ok(durable)
    }

    /// Spawns work for this engine on its own runtime.
    fn spawn<F, Fut>(&self, work: F)
    where
        F: FnOnce(Durable) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        drop(self.inner.runtime.spawn(work(self.clone())));
    }

    pub fn stats(&self) -> &DurableStats {
        &self.inner.stats
    }

    /// Instances with a run under way or queued.
    pub fn active_count(&self) -> usize {
        self.inner.active.len()
    }

    /// Finds the orchestrator function `name` (`function` or
    /// `service.function`).
    fn resolve_orchestrator(&self, name: &str) -> Result<crate::registry::ResolvedFunction, DurableError> {
        let registry = &self.inner.registry;
        let found = match name.split_once('.') {
            Some((service, function)) => registry.resolve(service, None, function).ok().into_iter().collect(),
            None => registry.find_functions_named(name),
        };
        let orchestrators: Vec<_> = found
            .into_iter()
            .filter(|r| r.function.spec.kind == GuestKind::Orchestrator)
            .collect();
        match orchestrators.len() {
            1 => Ok(orchestrators.into_iter().next().expect("one element")),
            0 => Err(DurableError::InvalidArgument(format!(
                "The function '{name}' doesn't exist, is disabled, or is not an orchestrator function."
            ))),
            _ => Err(DurableError::InvalidArgument(format!(
                "Several services have an orchestrator named '{name}': start it as 'service.{name}'."
            ))),
        }
    }

    /// Starts an orchestration (Pending until its first run).
    pub async fn start_instance(
        &self,
        name: &str,
        instance_id: Option<String>,
        input: Option<String>,
        version: Option<String>,
    ) -> Result<OrchRow, DurableError> {
        let resolved = self.resolve_orchestrator(name)?;
        let instance_id = match instance_id {
            Some(id) => {
                model::check_instance_id(&id).map_err(DurableError::InvalidArgument)?;
                id
            }
            None => model::new_instance_id(),
        };
        let spec = &resolved.function.spec;
        let row = self
            .inner
            .store
            .orch_start(NewOrchestration {
                instance_id,
                name: name.to_string(),
                service: resolved.service.clone(),
                function: spec.name.clone(),
                wasm_sha256: spec.wasm_sha256.clone(),
                memory_mb: spec.memory_mb,
                timeout_s: spec.timeout_s,
                version: version.unwrap_or_default(),
                input,
                now_ms: crate::util::now_ms(),
            })
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(msg) => DurableError::AlreadyExists(msg),
                e => DurableError::Store(e),
            })?;
        self.inner.stats.started.fetch_add(1, Ordering::Relaxed);
        self.wake(row.rid);
        Ok(row)
    }

    pub async fn get(&self, instance_id: &str) -> Result<Option<OrchRow>, StoreError> {
        self.inner.store.orch_get(instance_id).await
    }

    pub async fn history(&self, rid: i64) -> Result<Vec<Recorded>, StoreError> {
        self.inner.store.orch_history(rid).await
    }

    pub async fn list(&self, filter: OrchFilter) -> Result<Vec<OrchRow>, StoreError> {
        self.inner.store.orch_list(filter).await
    }

    pub async fn raise_event(
        &self,
        instance_id: &str,
        name: String,
        data: String,
    ) -> Result<ControlOutcome, StoreError> {
        let outcome = self
            .inner
            .store
            .orch_raise(instance_id, name, data, crate::util::now_ms())
            .await?;
        if let ControlOutcome::Done(row, _) = &outcome
            && row.status != RuntimeStatus::Suspended
        {
            self.wake(row.rid);
        }
        Ok(outcome)
    }

    /// Terminate / suspend / resume / rewind, and what follows from each:
    /// a terminate stops the instance's running activities (unlike Azure,
    /// which lets them finish), a resume or rewind runs it again.
    pub async fn control(&self, instance_id: &str, op: Control) -> Result<ControlOutcome, StoreError> {
        let terminating = matches!(op, Control::Terminate(_));
        let outcome = self
            .inner
            .store
            .orch_control(instance_id, op, crate::util::now_ms(), |row, retry| {
                activity_task(
                    row,
                    row.generation,
                    retry.step,
                    &retry.name,
                    &retry.input,
                    retry.attempt,
                )
            })
            .await?;
        if let ControlOutcome::Done(row, tasks) = &outcome {
            self.inner.waiting_for_steps.remove(&row.rid);
            for (seq, task) in tasks {
                self.inner.stats.activities_scheduled.fetch_add(1, Ordering::Relaxed);
                self.inner.scheduler.enqueue_inserted(*seq, task);
            }
            if terminating {
                self.notify_finished(&row.instance_id);
                self.stop_activities(row).await;
            } else if row.status == RuntimeStatus::Running {
                self.wake(row.rid);
            }
        }
        Ok(outcome)
    }

    /// Stops the activity tasks of `row` that have not finished.
    async fn stop_activities(&self, row: &OrchRow) {
        let Ok(history) = self.inner.store.orch_history(row.rid).await else {
            return;
        };
        let mut open: HashMap<u32, (String, String)> = HashMap::new();
        for rec in &history {
            match &rec.event {
                HistoryEvent::TaskScheduled {
                    step, name, task_id, ..
                } => {
                    open.insert(*step, (name.clone(), task_id.clone()));
                }
                HistoryEvent::TaskCompleted { step, .. } | HistoryEvent::TaskFailed { step, .. } => {
                    open.remove(step);
                }
                _ => {}
            }
        }
        for (name, task_id) in open.into_values() {
            if let Ok(Some(task)) = self.inner.store.get_task(&row.service, &name, &task_id, false).await
                && let Err(e) = self.inner.scheduler.stop(task).await
            {
                tracing::warn!(task_id, error = %e, "cannot stop an activity of a terminated orchestration");
            }
        }
    }

    pub async fn purge(&self, instance_id: Option<String>, filter: OrchFilter) -> Result<usize, StoreError> {
        self.inner.store.orch_purge(instance_id, filter).await
    }

    /// Waits until `instance_id` finishes or `timeout` passes; the row as it
    /// is then.
    pub async fn wait(
        &self,
        instance_id: &str,
        timeout: Duration,
        interval: Duration,
    ) -> Result<Option<OrchRow>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let interval = interval.clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            let waiter = self
                .inner
                .waiters
                .entry(instance_id.to_string())
                .or_insert_with(|| Arc::new(Notify::new()))
                .clone();
            let notified = waiter.notified();
            let row = self.inner.store.orch_get(instance_id).await;
            match &row {
                Ok(Some(r)) if !r.status.is_terminal() && tokio::time::Instant::now() < deadline => {}
                _ => {
                    // Forget the waiter unless someone else waits too.
                    self.inner
                        .waiters
                        .remove_if(instance_id, |_, w| Arc::strong_count(w) <= 2);
                    return row;
                }
            }
            let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + interval), notified).await;
        }
    }

    fn notify_finished(&self, instance_id: &str) {
        if let Some((_, waiter)) = self.inner.waiters.remove(instance_id) {
            waiter.notify_waiters();
        }
    }

    // ---- runs -------------------------------------------------------------

    /// Makes sure `rid` runs (again) soon; at most one run per instance at a
    /// time.
    fn wake(&self, rid: i64) {
        match self.inner.active.entry(rid) {
            dashmap::Entry::Occupied(mut e) => *e.get_mut() = true,
            dashmap::Entry::Vacant(e) => {
                e.insert(false);
                self.spawn(|this| async move { this.drive(rid).await });
            }
        }
    }

    // ---- activity outcomes and timers -------------------------------------
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip_and_are_valid_invocation_ids() {
        let id = activity_task_id(42, 3, 7, 1);
        assert_eq!(parse_task_id(&id), Some((42, 3, 7, 1)));
        assert!(crate::tasks::valid_invocation_id(&id));
        assert_eq!(parse_task_id("other"), None);
    }

    #[test]
    fn results_become_json_text() {
        assert_eq!(as_json_text(b"Hello Tokyo!"), "\"Hello Tokyo!\"");
        assert_eq!(as_json_text(b"42"), "42");
        assert_eq!(as_json_text(b"{\"a\":1}"), "{\"a\":1}");
    }
}
