//! Persistence: the one interface the core writes and reads through, and
//! its two implementations.
//!
//! [`Store`] is what the registry, the scheduler and the orchestration
//! engine hold. It is either the embedded SQLite store ([`sqlite`], the
//! default: one file in the data dir, group-committed by one writer thread)
//! or a PostgreSQL database that several nodes share ([`postgres`]). Both
//! take and answer the same domain values (`NewTask`, `Transition`,
//! `RegistryChange`, `RunCommit`, ...) and decide the same way against the
//! stored row; `runtime/tests/store_conformance.rs` runs one suite against
//! both. SQL stays in this module.

mod changes;
mod log_budget;
mod orch_rows;
pub mod postgres;
mod registry_rows;
pub mod sqlite;
mod task_rows;

pub use changes::TaskChange;
pub use orch_rows::{
    Committed, ControlOutcome, NewOrchestration, OrchFilter, OrchRow, RunCommit, TimerRow, Undelivered,
};
pub use postgres::PgStore;
pub use registry_rows::{ConfigTable, RegistryChange, RegistryRows};
pub use sqlite::SqliteStore;
pub use task_rows::{Applied, FollowUp, NewTask, TaskFilter, TaskPage, TaskRow, TaskUpdate, Transition};

use bytes::Bytes;

use crate::journal::rewind::StepRetry;
use crate::journal::{Control, Recorded};
use crate::tasks::{HistoryEvent, TaskKind, TaskState};

/// Errors at the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The shared store cannot be reached now (PostgreSQL down, restarting,
    /// or every connection busy past the wait): a 503, worth a retry.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    /// The database was migrated by a newer wasmfc.
    #[error("the database's schema is version {found}, newer than this wasmfc knows ({known}): upgrade wasmfc")]
    SchemaTooNew { found: i32, known: i32 },
    #[error("stored document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the store's writer thread has stopped")]
    WriterGone,
    #[error("cannot start the store's writer thread: {0}")]
    WriterStart(std::io::Error),
    /// The transaction that carried this write did not commit: nothing of
    /// it was stored. Not the caller's fault, and worth a retry.
    #[error("the write did not commit: {0}")]
    CommitFailed(String),
    /// A row with this key exists already (an invocation id, a running
    /// orchestration instance's id): the caller's conflict.
    #[error("{0}")]
    Duplicate(String),
    /// A row the write had just read or written is gone.
    #[error("{0}")]
    Vanished(String),
}

impl StoreError {
    /// True when the failure is a uniqueness violation (a duplicate key).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            }
            StoreError::Postgres(e) => e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            StoreError::Duplicate(_) => true,
            _ => false,
        }
    }

    /// True when the store could not be reached (rather than refusing the
    /// write): the request may succeed once it is back.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::WriterGone => true,
            StoreError::Postgres(e) => e.is_closed() || e.code().is_none(),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What PostgreSQL said (tokio-postgres's own text is just "db error").
fn postgres_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// How hard a commit pushes data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Committed data survives a process crash (`kill -9`); the OS may lose
    /// the last moments on power loss. SQLite `synchronous=NORMAL` in WAL.
    Process,
    /// Every group commit is fsynced: survives power loss too.
    /// SQLite `synchronous=FULL`.
    Fsync,
}

/// The default total of stored task logs (`--task-log-budget-mb`).
pub const DEFAULT_LOG_BUDGET: u64 = 1 << 30;

/// What a log dropped to keep within the budget reads as.
pub const DROPPED_LOG_MARKER: &[u8] =
    b"[wasmfc: this log was dropped to keep the stored task logs within --task-log-budget-mb]\n";

/// The store the core runs on. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// The embedded SQLite file (one node).
    Sqlite(SqliteStore),
    /// A PostgreSQL database several nodes may share.
    Postgres(PgStore),
}

/// Calls the same method on whichever store this is.
macro_rules! on_store {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// The shared store, when this is one.
    pub fn shared(&self) -> Option<&PgStore> {
        match self {
            Store::Postgres(pg) => Some(pg),
            Store::Sqlite(_) => None,
        }
    }

    /// `sqlite` or `postgres`, for logs and `GET /cluster`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Sets the total of task log bytes kept.
    pub fn set_log_budget(&self, bytes: u64) {
        on_store!(self, s => s.set_log_budget(bytes))
    }

    /// Task log bytes held now (as this node counts them).
    pub fn log_bytes(&self) -> u64 {
        on_store!(self, s => s.log_bytes())
    }

    /// Hears every task insert and state change once it is committed.
    pub fn task_changes(&self) -> tokio::sync::broadcast::Receiver<TaskChange> {
        on_store!(self, s => s.task_changes())
    }

    /// A persistent key/value setting (server secrets, schema facts).
    pub async fn meta_get_or_insert(&self, key: &str, make: impl FnOnce() -> String) -> Result<String> {
        on_store!(self, s => s.meta_get_or_insert(key, make).await)
    }

    // ---- registry and code ------------------------------------------------

    /// Every registry row.
    pub async fn load_registry(&self) -> Result<RegistryRows> {
        on_store!(self, s => s.load_registry().await)
    }

    /// Applies `changes` atomically, answering after the commit.
    pub async fn apply_registry(&self, changes: Vec<RegistryChange>) -> Result<()> {
        on_store!(self, s => s.apply_registry(changes).await)
    }

    /// A number that changes whenever the registry does (a shared store's
    /// nodes poll it); always 0 on the embedded store, which one node owns.
    pub async fn registry_version(&self) -> Result<i64> {
        match self {
            Store::Sqlite(_) => Ok(0),
            Store::Postgres(pg) => pg.registry_version().await,
        }
    }

    /// Keeps code bytes (a package, a wasm) under their SHA-256 where every
    /// node can read them. The embedded store's code lives in the data
    /// dir's `code/` already, so it keeps nothing here.
    pub async fn put_code_blob(&self, sha256: &str, bytes: Bytes) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(pg) => pg.put_code_blob(sha256, &bytes).await,
        }
    }

    /// Code bytes kept by [`Store::put_code_blob`].
    pub async fn code_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(pg) => pg.code_blob(sha256).await,
        }
    }

    // ---- tasks ------------------------------------------------------------

    /// Inserts a task in `Enqueued`; answers after the commit. A duplicate
    /// invocation id for the function is a [`StoreError::Duplicate`].
    pub async fn insert_task(&self, task: NewTask) -> Result<i64> {
        on_store!(self, s => s.insert_task(task).await)
    }

    /// Applies one transition; `None` when it did not apply.
    pub async fn transition(&self, t: Transition) -> Result<Option<Applied>> {
        on_store!(self, s => s.transition(t).await)
    }

    /// Applies transitions in one commit (each one independently).
    pub async fn transition_many(&self, ts: Vec<Transition>) -> Result<Vec<Option<Applied>>> {
        on_store!(self, s => s.transition_many(ts).await)
    }

    /// Moves every non-terminal task of a function to `Invalid`; answers
    /// their (seq, kind, invocation id).
    pub async fn invalidate_function_tasks(
        &self,
        service: &str,
        function: &str,
        detail: &str,
    ) -> Result<Vec<(i64, TaskKind, String)>> {
        on_store!(self, s => s.invalidate_function_tasks(service, function, detail).await)
    }

    pub async fn get_task(
        &self,
        service: &str,
        function: &str,
        invocation_id: &str,
        with_payload: bool,
    ) -> Result<Option<TaskRow>> {
        on_store!(self, s => s.get_task(service, function, invocation_id, with_payload).await)
    }

    pub async fn task_events(&self, seq: i64) -> Result<Vec<HistoryEvent>> {
        on_store!(self, s => s.task_events(seq).await)
    }

    pub async fn task_payload(&self, seq: i64) -> Result<Option<Bytes>> {
        on_store!(self, s => s.task_payload(seq).await)
    }

    pub async fn task_logs(&self, seq: i64) -> Result<Option<Bytes>> {
        on_store!(self, s => s.task_logs(seq).await)
    }

    /// Every non-terminal task (startup recovery), oldest first.
    pub async fn active_tasks(&self) -> Result<Vec<TaskRow>> {
        on_store!(self, s => s.active_tasks().await)
    }

    /// Deletes terminal tasks (and their history) that ended before `ms`.
    pub async fn purge_tasks_ended_before(&self, ms: i64) -> Result<usize> {
        on_store!(self, s => s.purge_tasks_ended_before(ms).await)
    }

    /// Counts of tasks by state (metrics).
    pub async fn task_counts(&self) -> Result<Vec<(String, i64)>> {
        on_store!(self, s => s.task_counts().await)
    }

    /// Stateful tasks by (service, function, state): the console's counts.
    pub async fn task_counts_by_function(&self) -> Result<Vec<(String, String, TaskState, i64)>> {
        on_store!(self, s => s.task_counts_by_function().await)
    }

    /// One page of a function's stateful tasks (or every function's).
    pub async fn list_tasks(&self, f: TaskFilter) -> Result<TaskPage> {
        on_store!(self, s => s.list_tasks(f).await)
    }

    // ---- orchestrations -----------------------------------------------------

    /// Creates an instance (or replaces a finished one with that id). A
    /// non-finished instance with the id → `Err(Duplicate)` with the
    /// extension's message.
    pub async fn orch_start(&self, o: NewOrchestration) -> Result<OrchRow> {
        on_store!(self, s => s.orch_start(o).await)
    }

    pub async fn orch_get(&self, instance_id: &str) -> Result<Option<OrchRow>> {
        on_store!(self, s => s.orch_get(instance_id).await)
    }

    /// The instance and its history, read together.
    pub async fn orch_load(&self, rid: i64) -> Result<Option<(OrchRow, Vec<Recorded>)>> {
        on_store!(self, s => s.orch_load(rid).await)
    }

    pub async fn orch_history(&self, rid: i64) -> Result<Vec<Recorded>> {
        on_store!(self, s => s.orch_history(rid).await)
    }

    /// Marks a Pending instance Running (its first run has begun).
    pub async fn orch_mark_running(&self, rid: i64, now_ms: i64) -> Result<()> {
        on_store!(self, s => s.orch_mark_running(rid, now_ms).await)
    }

    /// Records a run's outcome; `None` when the instance moved on meanwhile.
    pub async fn orch_commit(&self, run: RunCommit) -> Result<Option<Committed>> {
        on_store!(self, s => s.orch_commit(run).await)
    }

    /// Appends an activity outcome or a fired timer to a running instance;
    /// `Some(runnable)` when it was recorded. Duplicates are dropped.
    pub async fn orch_deliver(
        &self,
        rid: i64,
        generation: u32,
        task_id: Option<String>,
        event: crate::journal::HistoryEvent,
        now_ms: i64,
    ) -> Result<Option<bool>> {
        on_store!(self, s => s.orch_deliver(rid, generation, task_id, event, now_ms).await)
    }

    /// Schedules another attempt of a failed activity step (retry policy).
    pub async fn orch_retry(
        &self,
        rid: i64,
        generation: u32,
        event: crate::journal::HistoryEvent,
        task: NewTask,
        now_ms: i64,
    ) -> Result<Option<(i64, NewTask)>> {
        on_store!(self, s => s.orch_retry(rid, generation, event, task, now_ms).await)
    }

    /// Raises an event on an instance.
    pub async fn orch_raise(
        &self,
        instance_id: &str,
        name: String,
        data: String,
        now_ms: i64,
    ) -> Result<ControlOutcome> {
        on_store!(self, s => s.orch_raise(instance_id, name, data, now_ms).await)
    }

    pub async fn orch_list(&self, f: OrchFilter) -> Result<Vec<OrchRow>> {
        on_store!(self, s => s.orch_list(f).await)
    }

    /// Deletes instances matching `f`, or the one named `instance_id`.
    pub async fn orch_purge(&self, instance_id: Option<String>, f: OrchFilter) -> Result<usize> {
        on_store!(self, s => s.orch_purge(instance_id, f).await)
    }

    /// Terminate, suspend, resume or rewind, when [`Control::check`]
    /// allows it.
    pub async fn orch_control<F>(
        &self,
        instance_id: &str,
        op: Control,
        now_ms: i64,
        rewind_task: F,
    ) -> Result<ControlOutcome>
    where
        F: Fn(&OrchRow, &StepRetry) -> NewTask + Send + Sync + 'static,
    {
        on_store!(self, s => s.orch_control(instance_id, op, now_ms, rewind_task).await)
    }

    /// Startup: instances with work to do, armed timers, and finished
    /// activities whose results were never recorded.
    pub async fn orch_recover(&self) -> Result<(Vec<i64>, Vec<TimerRow>, Vec<Undelivered>)> {
        on_store!(self, s => s.orch_recover().await)
    }
}
