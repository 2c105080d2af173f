//! The embedded store: one SQLite database file in the data dir, in WAL
//! mode.
//!
//! All writes go through one writer thread that *group-commits*: it drains
//! every write queued while the previous transaction was committing and
//! commits them together, so a burst of task submissions costs one commit,
//! not one per task. Each write runs in its own savepoint, so one failing
//! write (say, a duplicate task id) does not undo its neighbours. A caller is
//! answered only after the commit — an acknowledged write survives `kill -9`.
//!
//! Reads use a small pool of read-only connections (WAL lets them run beside
//! the writer).

mod durable;
mod log_budget;
mod orch_control;
mod orch_recover;
mod registry;
mod task_list;
mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::changes::{self, TaskChange};
use super::log_budget::LogBudget;
use super::{DEFAULT_LOG_BUDGET, Durability, Result, StoreError};

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::Sender<Box<dyn WriteJob>>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    log_budget: Arc<LogBudget>,
    /// The task change feed (see [`changes`]).
    task_changes: tokio::sync::broadcast::Sender<TaskChange>,
}

const SCHEMA: &str = include_str!("schema.sql");
const TASK_SCHEMA: &str = include_str!("task_schema.sql");
const DURABLE_SCHEMA: &str = include_str!("durable_schema.sql");
/// Most writes that one transaction carries; bounds commit latency.
const MAX_BATCH: usize = 2048;

/// Columns added after a table's first release, with their declarations:
/// a store created before them gains them on open (`CREATE TABLE IF NOT
/// EXISTS` leaves an existing table as it was).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("tasks", "fuel_consumed", "INTEGER")];

fn add_missing_columns(conn: &Connection) -> Result<()> {
    for (table, column, declaration) in ADDED_COLUMNS {
        let present: bool = conn
            .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?
            .exists([column])?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Fsync => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(TASK_SCHEMA)?;
        add_missing_columns(&conn)?;
        conn.execute_batch(DURABLE_SCHEMA)?;
        let log_budget = Arc::new(LogBudget::new(DEFAULT_LOG_BUDGET, log_budget::measure(&conn)?));

        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        let (task_changes, _) = tokio::sync::broadcast::channel(changes::CAPACITY);
        let feed = task_changes.clone();
        std::thread::Builder::new()
            .name("wasmfc-store-writer".into())
            .spawn(move || writer_loop(conn, rx, feed))
            .map_err(StoreError::WriterStart)?;

        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: tx,
                readers: Mutex::new(Vec::new()),
                path: path.to_path_buf(),
                log_budget,
                task_changes,
            }),
        })
    }

    /// Sets the total of task log bytes kept (see [`LogBudget`]).
    pub fn set_log_budget(&self, bytes: u64) {
        self.inner.log_budget.set_limit(bytes);
    }

    /// Hears every task insert and state change once it is committed.
    pub fn task_changes(&self) -> tokio::sync::broadcast::Receiver<TaskChange> {
        self.inner.task_changes.subscribe()
    }

    /// Task log bytes held now.
    pub fn log_bytes(&self) -> u64 {
        self.inner.log_budget.used()
    }

    /// Runs `f` inside the next group commit and answers after the commit.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            f: Some(f),
            result: None,
            reply: Some(reply),
        };
        self.inner
            .writer
            .send(Box::new(job))
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on a read connection, off the async threads.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().pop() {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            let out = f(&conn);
            inner.readers.lock().push(conn);
            out
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// A persistent key/value setting (server secrets, schema facts).
    pub async fn meta_get_or_insert(&self, key: &str, make: impl FnOnce() -> String) -> Result<String> {
        let key = key.to_string();
        let candidate = make();
        self.write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)",
                rusqlite::params![key, candidate],
            )?;
            Ok(c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
        })
        .await
    }
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn)
}

/// A unit of work for the writer thread.
trait WriteJob: Send {
    /// Runs the job's statements; true when they succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: std::result::Result<(), String>);
}

struct Job<R, F> {
    f: Option<F>,
    result: Option<Result<R>>,
    reply: Option<oneshot::Sender<Result<R>>>,
}

impl<R, F> WriteJob for Job<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let out = f(conn);
        let ok = out.is_ok();
        self.result = Some(out);
        ok
    }

    fn finish(mut self: Box<Self>, commit: std::result::Result<(), String>) {
        let out = match (commit, self.result.take()) {
            (Ok(()), Some(r)) => r,
            (Err(e), _) => Err(StoreError::CommitFailed(e)),
            (Ok(()), None) => Err(StoreError::WriterGone),
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(out);
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn WriteJob>>,
    feed: tokio::sync::broadcast::Sender<TaskChange>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        changes::finish_batch(commit.is_ok(), &feed);
        for job in batch {
            job.finish(commit.clone());
        }
    }
    tracing::debug!("store writer stopped");
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> std::result::Result<(), String> {
    // Cached statements: a batch runs these once per job.
    let exec = |sql: &str| -> rusqlite::Result<()> { conn.prepare_cached(sql)?.execute([]).map(drop) };
    exec("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in batch.iter_mut() {
        if let Err(e) = exec("SAVEPOINT job") {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
        let mark = changes::mark();
        let ok = job.run(conn);
        let end = if ok {
            exec("RELEASE job")
        } else {
            changes::rollback_to(mark);
            exec("ROLLBACK TO job").and_then(|()| exec("RELEASE job"))
        };
        if let Err(e) = end {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
    }
    exec("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failing_write_does_not_undo_its_batch_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite"), Durability::Process).unwrap();
        let mut handles = Vec::new();
        for i in 0..50 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                s.write(move |c| {
                    // Every 10th write inserts a duplicate key and fails.
                    let key = if i % 10 == 0 {
                        "dup".to_string()
                    } else {
                        format!("k{i}")
                    };
                    c.execute("INSERT INTO meta(key, value) VALUES (?1, 'v')", [key])?;
                    Ok(())
                })
                .await
            }));
        }
        let mut failures = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failures += 1;
            }
        }
        // The first "dup" wins; the other four collide.
        assert_eq!(failures, 4);
        let count: i64 = store
            .read(|c| Ok(c.query_row("SELECT count(*) FROM meta", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(count, 46);
    }

    #[tokio::test]
    async fn a_write_whose_transaction_did_not_commit_is_a_commit_failure_not_a_duplicate() {
        let (reply, answer) = oneshot::channel();
        let mut job: Box<dyn WriteJob> = Box::new(Job {
            f: Some(|_: &Connection| Ok(())),
            result: None,
            reply: Some(reply),
        });
        // The job's statements ran; the batch's COMMIT then failed.
        assert!(job.run(&Connection::open_in_memory().unwrap()));
        job.finish(Err("disk I/O error".into()));
        let err = answer.await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::CommitFailed(_)), "{err:?}");
        assert!(!err.is_unique_violation());
    }
}
