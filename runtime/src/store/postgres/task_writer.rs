//! The task writer: group commit on PostgreSQL.
//!
//! Every task insert and transition of a node goes through one queue. A
//! loop takes the first write waiting and every other already queued (up
//! to [`MAX_BATCH`]) and runs them as one transaction
//! ([`write_batch`]) on a pooled connection; up to [`WRITERS`] batches are
//! in flight at once, and while they commit the next batch gathers — the
//! embedded store's group commit, with a few writers instead of one since
//! PostgreSQL runs transactions side by side. A caller is answered after
//! the commit.
//!
//! When a batch fails before its commit (another node's transaction
//! deadlocked with it, say) its writes run again one by one, each in its
//! own transaction, so one write's failure stays its own. Once `COMMIT`
//! was sent, the outcome of a failure is unknown, and each caller is told
//! that its write may not have been stored.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use super::super::changes::TaskChange;
use super::super::log_budget::LogBudget;
use super::super::{Applied, NewTask, Result, StoreError, Transition};
use super::PgStore;
use super::task_batch::{Failure, TaskWrite, TaskWritten, write_batch};

/// Batches in flight at once (each on its own connection). Two: one
/// gathers while the other commits; more split the same writes into more,
/// smaller commits.
const WRITERS: usize = 2;
/// Most writes one transaction carries; bounds commit latency.
const MAX_BATCH: usize = 512;

/// The queue into the writer. Dropping the last one stops the loop.
pub(super) struct TaskWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

struct Job {
    write: TaskWrite,
    reply: oneshot::Sender<Result<TaskWritten>>,
}

/// What the batches need: the pool, the log budget, the change feed.
struct Shared {
    pool: Pool,
    budget: Arc<LogBudget>,
    feed: broadcast::Sender<TaskChange>,
}

impl TaskWriter {
    /// Starts the writer loop on the current runtime.
    pub(super) fn start(pool: Pool, budget: Arc<LogBudget>, feed: broadcast::Sender<TaskChange>) -> TaskWriter {
        let (jobs, queued) = mpsc::unbounded_channel();
        tokio::spawn(gather(Arc::new(Shared { pool, budget, feed }), queued));
        TaskWriter { jobs }
    }

    /// Queues `write` and answers once its batch committed.
    pub(super) async fn write(&self, write: TaskWrite) -> Result<TaskWritten> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

impl PgStore {
    pub async fn insert_task(&self, task: NewTask) -> Result<i64> {
        match self.inner.writer.write(TaskWrite::Insert(task)).await? {
            TaskWritten::Inserted(outcome) => outcome,
            TaskWritten::Transitioned(_) => Err(StoreError::WriterGone),
        }
    }

    pub async fn transition(&self, t: Transition) -> Result<Option<Applied>> {
        Ok(self.transition_many(vec![t]).await?.pop().flatten())
    }

    /// Applies transitions in one transaction (each decided on its own,
    /// in order), group-committed with other writes.
    pub async fn transition_many(&self, ts: Vec<Transition>) -> Result<Vec<Option<Applied>>> {
        if ts.is_empty() {
            return Ok(Vec::new());
        }
        match self.inner.writer.write(TaskWrite::Transitions(ts)).await? {
            TaskWritten::Transitioned(outcomes) => Ok(outcomes),
            TaskWritten::Inserted(_) => Err(StoreError::WriterGone),
        }
    }
}

async fn gather(shared: Arc<Shared>, mut queued: mpsc::UnboundedReceiver<Job>) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    loop {
        let Ok(writer) = writers.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queued.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            commit(&shared, batch).await;
            drop(writer);
        });
    }
}

/// Runs `batch` as one transaction and answers its callers.
async fn commit(shared: &Shared, batch: Vec<Job>) {
    let (writes, replies): (Vec<TaskWrite>, Vec<_>) = batch.into_iter().map(|j| (j.write, j.reply)).unzip();
    match run(shared, &writes).await {
        Ok(written) => {
            for (reply, w) in replies.into_iter().zip(written) {
                let _ = reply.send(Ok(w));
            }
        }
        Err(Failure::Before(e)) if writes.len() == 1 => {
            let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
        }
        // An unreachable store fails every write alike.
        Err(Failure::Before(e)) if e.is_unavailable() => {
            tracing::warn!(error = %e, writes = writes.len(), "a batch of task writes failed");
            answer_all(replies, &e);
        }
        Err(Failure::Before(e)) => {
            tracing::warn!(error = %e, writes = writes.len(), "a batch of task writes failed; writing them one by one");
            for (write, reply) in writes.into_iter().zip(replies) {
                let alone = [write];
                let outcome = match run(shared, &alone).await {
                    Ok(mut w) => w.pop().ok_or(StoreError::WriterGone),
                    Err(Failure::Before(e) | Failure::AtCommit(e)) => Err(e),
                };
                let _ = reply.send(outcome);
            }
        }
        Err(Failure::AtCommit(e)) => {
            tracing::warn!(error = %e, writes = writes.len(), "a batch of task writes failed at commit");
            answer_all(replies, &e);
        }
    }
}

fn answer_all(replies: Vec<oneshot::Sender<Result<TaskWritten>>>, e: &StoreError) {
    for reply in replies {
        let copy = if e.is_unavailable() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::CommitFailed(e.to_string())
        };
        let _ = reply.send(Err(copy));
    }
}

async fn run(shared: &Shared, writes: &[TaskWrite]) -> Result<Vec<TaskWritten>, Failure> {
    let client = shared
        .pool
        .get()
        .await
        .map_err(|e| Failure::Before(StoreError::Unavailable(e.to_string())))?;
    match write_batch(&client, writes, &shared.budget).await {
        Ok((written, changes)) => {
            if shared.feed.receiver_count() > 0 {
                for change in changes {
                    let _ = shared.feed.send(change);
                }
            }
            Ok(written)
        }
        Err(failure) => {
            // The connection may still be inside the failed transaction:
            // closed, not pooled (the server rolls back).
            drop(deadpool_postgres::Object::take(client));
            Err(failure)
        }
    }
}
