//! Orchestrator runs: one pass of an instance's code over its journal, and
//! committing what the pass recorded (events, activity tasks, timers, the
//! end of the execution) in one transaction.

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Durable;
use super::history::{HistoryEvent, NewAction, Replay};
use super::model::RuntimeStatus;
use super::{activity_task, activity_task_id, as_json_text};
use crate::engine::{ActivityCall, Interrupt, Journal, RunEnd, RunSettings, StopHandle};
use crate::store::{OrchRow, RunCommit, StoreError, TimerRow};
use parking_lot::Mutex;

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
    pub(super) async fn drive(self, rid: i64) {
        loop {
            // On a shared store, one node runs an instance at a time.
            let Ok(fence) = self.take_lease(rid).await else {
                // Another node holds it: news that arrived here is pending
                // in the store, which that node reads when it lets go.
                self.inner.active.remove(&rid);
                return;
            };
            let again = {
                let Ok(_permit) = self.inner.runs.clone().acquire_owned().await else {
                    return;
                };
                match self.run_once(rid, fence).await {
                    Ok(again) => again,
                    Err(e) => {
                        tracing::error!(rid, error = %e, "orchestration run failed to commit; retrying soon");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        true
                    }
                }
            };
            let pending = self.give_lease_back(rid, fence).await;
            if again || pending {
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
    pub(super) async fn run_once(&self, rid: i64, fence: Option<i64>) -> Result<bool, StoreError> {
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
        self.commit(row, history.last().map_or(0, |r| r.seq + 1), replay, end, now, fence)
            .await
    }

    pub(super) async fn commit(
        &self,
        row: OrchRow,
        loaded_seq: i64,
        replay: Replay,
        end: RunEnd,
        now: i64,
        fence: Option<i64>,
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
                fence,
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
                self.inner.armed.insert((row.rid, row.generation, step));
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
}
