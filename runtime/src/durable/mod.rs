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
pub mod model;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};

use crate::engine::{ActivityCall, Engine, GuestKind, Interrupt, Journal, RunEnd, RunSettings, StopHandle};
use crate::journal::Control;
use crate::registry::{CodeDir, Registry};
use crate::scheduler::{ACTIVITY_KIND, ActivityOutcome, Scheduler};
use crate::store::{
    ControlOutcome, NewOrchestration, NewTask, OrchFilter, OrchRow, RunCommit, Store, StoreError, TimerRow,
};
use crate::tasks::TaskState;
use history::{HistoryEvent, NewAction, Recorded, Replay};
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
        kind: ACTIVITY_KIND.into(),
        payload: Bytes::from(input.to_string()),
        request_id: crate::util::new_request_id(),
        created_ms: crate::util::now_ms(),
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
    timer_wake: Notify,
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

/// A [`Replay`] shared with the engine for one run, read back afterwards.
struct SharedReplay(Arc<Mutex<Replay>>);

impl Journal for SharedReplay {
    fn call_functions(&mut self, calls: Vec<ActivityCall>) -> Result<Vec<Result<String, String>>, Interrupt> {
        self.0.lock().call_functions(calls)
    }
    fn wait_for_event(&mut self, name: String, timeout_ms: Option<u64>) -> Result<Option<String>, Interrupt> {
        self.0.lock().wait_for_event(name, timeout_ms)
    }
    fn create_timer(&mut self, delay_ms: u64) -> Result<(), Interrupt> {
        self.0.lock().create_timer(delay_ms)
    }
    fn set_custom_status(&mut self, status: String) {
        self.0.lock().set_custom_status(status)
    }
    fn continue_as_new(&mut self, input: String) -> Interrupt {
        self.0.lock().continue_as_new(input)
    }
    fn now(&mut self) -> Result<u64, Interrupt> {
        self.0.lock().now()
    }
    fn new_guid(&mut self) -> String {
        self.0.lock().new_guid()
    }
    fn instance_id(&self) -> String {
        self.0.lock().instance_id()
    }
    fn is_replaying(&self) -> bool {
        self.0.lock().is_replaying()
    }
}

impl Durable {
    /// Starts the engine: hooks into the scheduler's activity outcomes,
    /// recovers what a previous process left, starts the timer loop.
    pub fn start(
        store: Store,
        registry: Registry,
        engine: Engine,
        code: CodeDir,
        scheduler: Scheduler,
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
                timer_wake: Notify::new(),
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
        let (pending, timers, undelivered) = durable.inner.store.orch_recover()?;
        if !pending.is_empty() || !timers.is_empty() || !undelivered.is_empty() {
            tracing::info!(
                runnable = pending.len(),
                timers = timers.len(),
                undelivered = undelivered.len(),
                "recovering orchestrations"
            );
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

    async fn drive(self, rid: i64) {
        loop {
            let again = {
                let Ok(_permit) = self.inner.runs.clone().acquire_owned().await else {
                    return;
                };
                match self.run_once(rid).await {
                    Ok(again) => again,
                    Err(e) => {
                        tracing::error!(rid, error = %e, "orchestration run failed to commit; retrying soon");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        true
                    }
                }
            };
            if again {
                continue;
            }
            // Leave only if no wake arrived meanwhile.
            if self.inner.active.remove_if(&rid, |_, rerun| !*rerun).is_some() {
                return;
            }
            if let Some(mut rerun) = self.inner.active.get_mut(&rid) {
                *rerun = false;
            }
        }
    }

    /// One run of the orchestrator over its current history. Returns true
    /// when it must run again.
    async fn run_once(&self, rid: i64) -> Result<bool, StoreError> {
        let store = &self.inner.store;
        let Some((row, history)) = store.orch_load(rid).await? else {
            return Ok(false);
        };
        if !matches!(row.status, RuntimeStatus::Pending | RuntimeStatus::Running) {
            return Ok(false);
        }
        let now = crate::util::now_ms();
        if row.status == RuntimeStatus::Pending {
            store.orch_mark_running(rid, now).await?;
        }
        self.inner.stats.runs.fetch_add(1, Ordering::Relaxed);
        let code = self.inner.code.clone();
        let sha = row.wasm_sha256.clone();
        let prepared = self
            .inner
            .engine
            .prepared(&row.wasm_sha256, move || std::fs::read(code.wasm_path(&sha)))
            .await;
        let replay = Arc::new(Mutex::new(Replay::new(&row.instance_id, row.generation, &history, now)));
        let end = match prepared {
            Err(e) => RunEnd::Failed(crate::engine::InvokeError::Internal(format!(
                "cannot load the orchestrator's code ({}): {e}",
                row.wasm_sha256
            ))),
            Ok(prepared) => {
                let seed: [u8; 32] = Sha256::digest(format!("{}/{}", row.instance_id, row.generation)).into();
                let settings = RunSettings {
                    memory_limit_mb: row.memory_mb,
                    timeout: Duration::from_secs(row.timeout_s.max(1)),
                    stop: StopHandle::new(),
                    created_ms: row.created_ms.max(0) as u64,
                    seed,
                };
                let input = row.input.clone().unwrap_or_else(|| "null".into());
                match self
                    .inner
                    .engine
                    .run_orchestrator(prepared, Box::new(SharedReplay(replay.clone())), input, settings)
                    .await
                {
                    Ok(outcome) => {
                        if !outcome.log.is_empty() {
                            tracing::debug!(instance = %row.instance_id, log = %String::from_utf8_lossy(&outcome.log), "orchestrator output");
                        }
                        outcome.end
                    }
                    Err((e, _)) => RunEnd::Failed(e),
                }
            }
        };
        let replay = std::mem::replace(&mut *replay.lock(), Replay::new("", 0, &[], 0));
        self.commit(row, history.last().map_or(0, |r| r.seq + 1), replay, end, now)
            .await
    }

    async fn commit(
        &self,
        row: OrchRow,
        loaded_seq: i64,
        replay: Replay,
        end: RunEnd,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut events = Vec::new();
        let mut tasks = Vec::new();
        let mut timers = Vec::new();
        for action in &replay.new_actions {
            let event = action.event(|step| activity_task_id(row.rid, row.generation, step, 0));
            match action {
                NewAction::Activity { step, name, input, .. } => {
                    tasks.push(activity_task(&row, row.generation, *step, name, input, 0));
                }
                NewAction::Timer { step, fire_at_ms, .. } => timers.push((*step, *fire_at_ms)),
                _ => {}
            }
            events.push(event);
        }
        let failed = |msg: String| {
            let text = serde_json::Value::String(msg).to_string();
            Some((RuntimeStatus::Failed, Some(text)))
        };
        let mut continue_as_new = None;
        let finished = match end {
            RunEnd::Returned(Ok(out)) => Some((RuntimeStatus::Completed, Some(as_json_text(out.as_bytes())))),
            RunEnd::Returned(Err(msg)) => failed(format!("Orchestrator function '{}' failed: {msg}", row.name)),
            RunEnd::Interrupted(Interrupt::Suspend) => None,
            RunEnd::Interrupted(Interrupt::ContinueAsNew(input)) => {
                continue_as_new = Some(input);
                None
            }
            RunEnd::Interrupted(Interrupt::NonDeterminism(msg)) => failed(msg),
            RunEnd::Failed(e) => failed(format!("Orchestrator function '{}' failed: {e}", row.name)),
        };
        if let Some((status, result)) = &finished {
            events.push(HistoryEvent::ExecutionCompleted {
                status: status.as_str().to_string(),
                result: result.clone(),
            });
        }
        let custom_status = replay.custom_status.as_deref().map(|s| as_json_text(s.as_bytes()));
        let waiting_for_steps = replay.waiting_for_steps;
        let done = finished.is_some();
        let committed = self
            .inner
            .store
            .orch_commit(RunCommit {
                rid: row.rid,
                generation: row.generation,
                loaded_seq,
                now_ms: now,
                events,
                finished,
                custom_status,
                tasks,
                timers: timers.clone(),
                continue_as_new,
            })
            .await?;
        let Some(committed) = committed else { return Ok(false) };
        match waiting_for_steps {
            Some(steps) if !done && !committed.run_again => {
                self.inner.waiting_for_steps.insert(row.rid, steps);
            }
            _ => {
                self.inner.waiting_for_steps.remove(&row.rid);
            }
        }
        for (seq, task) in &committed.tasks {
            self.inner.stats.activities_scheduled.fetch_add(1, Ordering::Relaxed);
            self.inner.scheduler.enqueue_inserted(*seq, task);
        }
        if !timers.is_empty() {
            let mut heap = self.inner.timers.lock();
            for (step, fire_ms) in timers {
                heap.push(Reverse(TimerRow {
                    fire_ms,
                    rid: row.rid,
                    generation: row.generation,
                    step,
                }));
            }
            drop(heap);
            self.inner.timer_wake.notify_one();
        }
        if done {
            self.inner.stats.finished.fetch_add(1, Ordering::Relaxed);
            self.notify_finished(&row.instance_id);
        }
        Ok(committed.run_again)
    }

    // ---- activity outcomes and timers -------------------------------------

    async fn on_activity(&self, outcome: ActivityOutcome) {
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
    async fn retry(&self, rid: i64, generation: u32, step: u32, attempt: u32, reason: &str) -> Option<()> {
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

    async fn deliver(&self, rid: i64, generation: u32, task_id: Option<String>, event: HistoryEvent) {
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
    fn unblocks(&self, rid: i64, event: &HistoryEvent) -> bool {
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

    async fn timer_loop(self) {
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
