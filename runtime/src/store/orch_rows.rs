//! Orchestration rows as the store answers them, and what runs, starts
//! and operations hand it.

use super::NewTask;
use crate::journal::{HistoryEvent, RuntimeStatus};

/// A stored instance.
#[derive(Debug, Clone)]
pub struct OrchRow {
    pub rid: i64,
    pub instance_id: String,
    pub name: String,
    pub service: String,
    pub function: String,
    pub wasm_sha256: String,
    pub memory_mb: u64,
    pub timeout_s: u64,
    pub version: String,
    pub generation: u32,
    pub status: RuntimeStatus,
    pub input: Option<String>,
    pub output: Option<String>,
    pub custom_status: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub next_seq: i64,
    pub pending: bool,
}

/// The instance columns, in [`OrchRow`]'s order (the same on both stores).
pub(super) const COLUMNS: &str = "rid, instance_id, name, service, function, wasm_sha256, memory_mb, timeout_s, version, \
     generation, status, input, output, custom_status, created_ms, updated_ms, next_seq, pending";

/// An instance to start.
#[derive(Debug, Clone)]
pub struct NewOrchestration {
    pub instance_id: String,
    pub name: String,
    pub service: String,
    pub function: String,
    pub wasm_sha256: String,
    pub memory_mb: u64,
    pub timeout_s: u64,
    pub version: String,
    pub input: Option<String>,
    pub now_ms: i64,
}

/// What one orchestrator run leaves behind.
#[derive(Debug, Clone)]
pub struct RunCommit {
    pub rid: i64,
    pub generation: u32,
    /// `next_seq` when the run loaded the history: anything appended since
    /// means the orchestrator must run again.
    pub loaded_seq: i64,
    pub now_ms: i64,
    pub events: Vec<HistoryEvent>,
    /// Set when the run ended the execution (Completed, Failed).
    pub finished: Option<(RuntimeStatus, Option<String>)>,
    pub custom_status: Option<String>,
    /// Activity tasks to insert with the events.
    pub tasks: Vec<NewTask>,
    /// Timers to arm: (step, fire time).
    pub timers: Vec<(u32, i64)>,
    /// Start over with this input and an empty history.
    pub continue_as_new: Option<String>,
    /// The instance lease token the run ran under (shared store): the
    /// commit applies only while it is still the instance's.
    pub fence: Option<i64>,
}

/// The result of a committed run.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Run the orchestrator again (more arrived, or it continued as new).
    pub run_again: bool,
    /// The activity tasks inserted, with their seq.
    pub tasks: Vec<(i64, NewTask)>,
    pub generation: u32,
}

/// What an operation found.
#[derive(Debug, Clone)]
pub enum ControlOutcome {
    NotFound,
    /// The instance has finished (410).
    Gone(RuntimeStatus),
    /// The operation is not legal in this status (500 per the spec).
    WrongState(RuntimeStatus),
    /// Applied; the row afterwards and the tasks a rewind inserted.
    Done(Box<OrchRow>, Vec<(i64, NewTask)>),
}

/// List filters (`GET /instances`).
#[derive(Debug, Clone, Default)]
pub struct OrchFilter {
    pub created_from_ms: Option<i64>,
    pub created_to_ms: Option<i64>,
    pub statuses: Vec<RuntimeStatus>,
    pub id_prefix: Option<String>,
    pub limit: usize,
    /// Keyset cursor: (created_ms, instance_id) of the last row returned.
    pub after: Option<(i64, String)>,
}

/// A due timer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerRow {
    pub fire_ms: i64,
    pub rid: i64,
    pub generation: u32,
    pub step: u32,
}

impl Undelivered {
    /// The history event of an activity task that ended in `status` with
    /// `result` or `error`.
    pub(super) fn outcome(step: u32, status: &str, result: Option<Vec<u8>>, error: String) -> HistoryEvent {
        if status == "Succeeded" {
            HistoryEvent::TaskCompleted {
                step,
                result: crate::journal::as_json_text(&result.unwrap_or_default()),
            }
        } else {
            HistoryEvent::TaskFailed {
                step,
                reason: if error.is_empty() {
                    format!("activity task ended {status}")
                } else {
                    error
                },
            }
        }
    }
}

/// An activity that finished while no one could deliver its result (the
/// process died in between): found at recovery.
#[derive(Debug, Clone)]
pub struct Undelivered {
    pub rid: i64,
    pub generation: u32,
    pub task_id: String,
    pub event: HistoryEvent,
}
