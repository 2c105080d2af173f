//! What task persistence takes and answers: new tasks, stored rows, the
//! fields a transition sets, transitions and their follow-ups, list filters
//! and pages.

use bytes::Bytes;

use crate::tasks::{TaskKind, TaskState};

/// A task to insert (its first state is `Enqueued`).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub service: String,
    pub function: String,
    pub qualifier: String,
    pub invocation_id: String,
    /// Visible through the task API (task mode); plain async otherwise.
    pub stateful: bool,
    pub kind: TaskKind,
    pub payload: Bytes,
    pub request_id: String,
    pub created_ms: i64,
    /// When it may run (ms since the epoch; 0: at once). Stored as the
    /// task's `next_run_ms`, so a delay survives a restart.
    pub due_ms: i64,
    /// Detail of the `Enqueued` history event.
    pub detail: String,
}

/// A stored task.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub seq: i64,
    pub service: String,
    pub function: String,
    pub qualifier: String,
    pub invocation_id: String,
    pub stateful: bool,
    pub kind: TaskKind,
    pub status: TaskState,
    pub payload: Option<Bytes>,
    pub request_id: String,
    pub created_ms: i64,
    pub end_ms: i64,
    pub attempts: u32,
    pub next_run_ms: i64,
    pub error: String,
    pub result: Option<Bytes>,
    pub destination_status: String,
    pub instance_id: String,
    pub duration_ms: i64,
    /// Fuel the last attempt consumed (servers with `--fuel-metering`).
    pub fuel_consumed: Option<u64>,
    /// When the lease a node holds on the task lapses (ms since the epoch);
    /// 0 when none does. Only a shared store leases tasks.
    pub lease_until_ms: i64,
}

/// Fields a transition may set.
#[derive(Debug, Clone, Default)]
pub struct TaskUpdate {
    pub attempts: Option<u32>,
    pub next_run_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub error: Option<String>,
    pub result: Option<Bytes>,
    pub destination_status: Option<String>,
    pub instance_id: Option<String>,
    pub duration_ms: Option<i64>,
    pub fuel_consumed: Option<u64>,
    pub logs: Option<Bytes>,
}

impl TaskUpdate {
    /// This update followed by `later`, as one: each field `later` sets
    /// replaces this one's, as two successive writes of the row would
    /// leave it.
    pub fn then(self, later: TaskUpdate) -> TaskUpdate {
        TaskUpdate {
            attempts: later.attempts.or(self.attempts),
            next_run_ms: later.next_run_ms.or(self.next_run_ms),
            end_ms: later.end_ms.or(self.end_ms),
            error: later.error.or(self.error),
            result: later.result.or(self.result),
            destination_status: later.destination_status.or(self.destination_status),
            instance_id: later.instance_id.or(self.instance_id),
            duration_ms: later.duration_ms.or(self.duration_ms),
            fuel_consumed: later.fuel_consumed.or(self.fuel_consumed),
            logs: later.logs.or(self.logs),
        }
    }

    /// `row` as it reads once this update is written (its logs are not
    /// part of a row).
    pub fn apply_to(&self, row: &mut TaskRow) {
        row.attempts = self.attempts.unwrap_or(row.attempts);
        row.next_run_ms = self.next_run_ms.unwrap_or(row.next_run_ms);
        row.end_ms = self.end_ms.unwrap_or(row.end_ms);
        row.duration_ms = self.duration_ms.unwrap_or(row.duration_ms);
        row.fuel_consumed = self.fuel_consumed.or(row.fuel_consumed);
        if let Some(error) = &self.error {
            row.error.clone_from(error);
        }
        if let Some(result) = &self.result {
            row.result = Some(result.clone());
        }
        if let Some(status) = &self.destination_status {
            row.destination_status.clone_from(status);
        }
        if let Some(instance) = &self.instance_id {
            row.instance_id.clone_from(instance);
        }
    }
}

/// A pure decision (`Fn`), so a batch that did not commit can decide again.
type Decide = Box<dyn Fn(&TaskRow) -> Option<TaskState> + Send + Sync>;

/// A state change of one task, decided against its current row.
pub struct Transition {
    pub seq: i64,
    /// Picks the new state from the current row; `None` leaves it alone.
    pub decide: Decide,
    pub detail: String,
    pub update: TaskUpdate,
    /// A destination delivery, recorded in the same transaction when the
    /// transition lands in `follow_up.when`, so it exists exactly when the
    /// transition does.
    pub follow_up: Option<FollowUp>,
    /// Return the payload with the outcome (the dispatcher needs it).
    pub want_payload: bool,
    /// The lease token of the claim this transition acts under (a node of
    /// a cluster): it applies only while the token is still the task's, so
    /// a node whose lease lapsed cannot end a task that another node has
    /// taken over. `None` acts regardless (one node; a Stop from any node).
    pub fence: Option<i64>,
}

impl Transition {
    /// A transition from any of `from` to `to`.
    pub fn new(seq: i64, from: &'static [TaskState], to: TaskState, detail: impl Into<String>) -> Transition {
        Transition {
            seq,
            decide: Box::new(move |row| from.contains(&row.status).then_some(to)),
            detail: detail.into(),
            update: TaskUpdate::default(),
            follow_up: None,
            want_payload: false,
            fence: None,
        }
    }

    pub fn deciding(
        seq: i64,
        detail: impl Into<String>,
        decide: impl Fn(&TaskRow) -> Option<TaskState> + Send + Sync + 'static,
    ) -> Transition {
        Transition {
            seq,
            decide: Box::new(decide),
            detail: detail.into(),
            update: TaskUpdate::default(),
            follow_up: None,
            want_payload: false,
            fence: None,
        }
    }

    pub fn with(mut self, update: TaskUpdate) -> Self {
        self.update = update;
        self
    }

    /// Acts under the lease token `fence` (see [`Transition::fence`]).
    pub fn fenced(mut self, fence: Option<i64>) -> Self {
        self.fence = fence;
        self
    }
}

/// What to deliver when a transition lands in a given state.
#[derive(Debug, Clone)]
pub struct FollowUp {
    pub when: TaskState,
    /// The destination invocation to insert, if it could be built.
    pub task: Option<NewTask>,
    /// The task's `destinationStatus` afterwards.
    pub status: String,
}

/// The result of an applied transition.
#[derive(Debug, Clone)]
pub struct Applied {
    pub state: TaskState,
    pub row: TaskRow,
    /// The follow-up task's seq, if one was inserted.
    pub follow_up_seq: Option<i64>,
}

/// List filters (FC's ListStatefulAsyncInvocations).
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// The (service, function) whose tasks to list; `None` lists every
    /// function's (the console's list across functions).
    pub function: Option<(String, String)>,
    pub qualifier: Option<String>,
    pub id_prefix: Option<String>,
    /// Any of these states; empty for every state.
    pub statuses: Vec<TaskState>,
    pub started_begin_ms: Option<i64>,
    pub started_end_ms: Option<i64>,
    pub descending: bool,
    pub limit: usize,
    /// Keyset cursor: (created_ms, seq) of the last row of the previous page.
    pub after: Option<(i64, i64)>,
    pub include_payload: bool,
}

#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<TaskRow>,
    /// Cursor of the next page's start, when there is one.
    pub next: Option<(i64, i64)>,
}
