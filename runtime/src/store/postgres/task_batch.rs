//! One group commit of task writes on PostgreSQL.
//!
//! A node's submissions and its runners' state changes arrive together; the
//! [writer](super::task_writer) hands one transaction every write queued
//! while the last one committed, and here each kind of write becomes one
//! set-based statement over arrays ([`task_columns`](super::task_columns))
//! rather than one per task, and the statements are pipelined: `BEGIN`
//! with the `SELECT … ORDER BY seq FOR UPDATE` that locks the rows, then —
//! once the transitions are decided against them — the `UPDATE`, the
//! inserts, the history and `COMMIT` sent together. Two round trips and
//! one WAL flush per batch, however many tasks it carries; round trips
//! per task were what bound a node's task rate. A batch of submissions
//! alone is one statement.
//!
//! Transitions are decided one by one against the locked row, exactly as
//! a single transition is. Transitions of one task in one batch (a
//! runner's `Dequeued` and `Running`, a Stop beside a runner's change) are
//! decided in the order they were queued, each against the row as the
//! ones before it left it, and written as one update with an event each.

use std::collections::HashMap;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use super::super::changes::TaskChange;
use super::super::log_budget::LogBudget;
use super::super::{Applied, NewTask, Result, StoreError, TaskRow, TaskUpdate, Transition};
use super::log_budget::prune_logs;
use super::task_columns::{EventColumns, InsertColumns, Statements, TaskKey, UpdateColumns, duplicate, key_of};
use super::tasks::{changed, inserted_change, row_from};
use crate::tasks::TaskState;

/// A write the batch carries.
pub(super) enum TaskWrite {
    Insert(NewTask),
    Transitions(Vec<Transition>),
}

/// What one write did: an insert's seq (or [`StoreError::Duplicate`]), or
/// the outcome of each transition (`None` when it did not apply).
pub(super) enum TaskWritten {
    Inserted(Result<i64>),
    Transitioned(Vec<Option<Applied>>),
}

/// Where a batch failed.
pub(super) enum Failure {
    /// Before `COMMIT` took effect: nothing of it was stored.
    Before(StoreError),
    /// At `COMMIT`: it may or may not have been stored.
    AtCommit(StoreError),
}

fn before(e: tokio_postgres::Error) -> Failure {
    Failure::Before(e.into())
}

/// What a transition writes to its row, decided against the locked row.
pub(super) struct Planned {
    pub next: TaskState,
    /// The fields to set, `end_ms` and `destination_status` filled in.
    pub update: TaskUpdate,
    pub detail: String,
    /// The destination task to insert with it.
    pub follow_up: Option<NewTask>,
    /// The row as it reads afterwards (state and end).
    pub row: TaskRow,
}

/// Decides transition `t` against `row` (held under lease `token`);
/// `None` when it does not apply. Pure: a batch that did not commit
/// decides again.
pub(super) fn plan(t: &Transition, mut row: TaskRow, token: i64, now: i64) -> Option<Planned> {
    if t.fence.is_some_and(|f| f != token) {
        tracing::info!(seq = t.seq, "refused a transition with a stale lease token");
        return None;
    }
    let next = (t.decide)(&row)?;
    if !row.status.can_become(next) {
        tracing::error!(seq = t.seq, from = %row.status, to = %next, "refused an illegal task transition");
        return None;
    }
    let follow_up = t.follow_up.as_ref().filter(|f| f.when == next);
    let mut update = t.update.clone();
    if let Some(f) = follow_up {
        update.destination_status = Some(f.status.clone());
    }
    update.end_ms = update.end_ms.or(next.is_terminal().then_some(now));
    row.status = next;
    if let Some(end) = update.end_ms {
        row.end_ms = end;
    }
    Some(Planned {
        next,
        update,
        detail: t.detail.clone(),
        follow_up: follow_up.and_then(|f| f.task.clone()),
        row,
    })
}

/// Where a transition sits in the batch: (write, position in its list).
type Slot = (usize, usize);

/// Why a task is inserted: a submission (write index) or a transition's
/// destination delivery.
#[derive(Clone, Copy)]
enum Origin {
    Submitted(usize),
    FollowUp(Slot),
}

/// What a batch has decided so far.
#[derive(Default)]
struct Gathered {
    /// Each transition's outcome, by slot.
    applied: Vec<Vec<Option<Applied>>>,
    inserts: Vec<(Origin, NewTask)>,
    events: EventColumns,
    changes: Vec<TaskChange>,
    /// Log bytes replaced (old, new), counted once the writes are sent.
    log_sizes: Vec<(u64, u64)>,
    /// Whether the commit must wait for its WAL flush (see [`replayable`]).
    durable: bool,
}

/// States whose loss with the database's last moments is harmless: the
/// task goes back to the state before (its lease and fencing make a late
/// outcome refused, and it runs again as after any crash), and the first
/// durable commit after them — the attempt's outcome — flushes them
/// anyway. A batch of only these commits without waiting for the flush.
fn replayable(state: TaskState) -> bool {
    matches!(state, TaskState::Dequeued | TaskState::Running)
}

/// Runs `writes` as one transaction on `client`; answers each write's
/// outcome, in order, and the changes to publish. On a failure the
/// connection may be left inside the transaction: its caller closes it.
pub(super) async fn write_batch(
    client: &ClientWrapper,
    writes: &[TaskWrite],
    budget: &LogBudget,
) -> Result<(Vec<TaskWritten>, Vec<TaskChange>), Failure> {
    let statements = Statements::prepare(client).await.map_err(Failure::Before)?;
    let mut gathered = Gathered::default();
    let mut transitions: Vec<(Slot, &Transition)> = Vec::new();
    for (w, write) in writes.iter().enumerate() {
        match write {
            TaskWrite::Insert(task) => {
                gathered.applied.push(Vec::new());
                gathered.inserts.push((Origin::Submitted(w), task.clone()));
            }
            TaskWrite::Transitions(ts) => {
                gathered.applied.push((0..ts.len()).map(|_| None).collect());
                transitions.extend(ts.iter().enumerate().map(|(i, t)| ((w, i), t)));
            }
        }
    }
    let rows = if transitions.is_empty() {
        // Submissions only: one statement, atomic on its own.
        let inserts = gathered.insert_columns();
        client
            .query(&statements.insert, &inserts.params())
            .await
            .map_err(before)?
    } else {
        let updates = lock_and_decide(client, &statements, transitions, &mut gathered).await?;
        for (old, new) in gathered.log_sizes.drain(..) {
            budget.replaced(old, new);
        }
        let inserts = gathered.insert_columns();
        let commit = if gathered.durable || !inserts.is_empty() {
            "COMMIT"
        } else {
            "SET LOCAL synchronous_commit TO OFF; COMMIT"
        };
        let writes = Writes {
            updates: &updates,
            inserts: &inserts,
            events: &gathered.events,
            commit,
        };
        finish(client, &statements, writes, budget).await?
    };
    Ok(gathered.answer(InsertColumns::inserted(&rows), writes.len()))
}

/// Opens a batch's transaction. Its statements find their rows by primary
/// key, and keep the generic plan cached on the connection (planning each
/// batch anew cost as much as running it), made with sequential scans
/// disabled: a plan first made while the table was small would otherwise
/// join the batch's arrays against a scan of every task, and nothing
/// would replan it as the table grows until the next `ANALYZE`.
const BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode TO force_generic_plan; SET LOCAL enable_seqscan TO off";

/// Opens the transaction, locks every row the transitions touch and
/// decides them; answers the update, still to send.
async fn lock_and_decide(
    client: &ClientWrapper,
    statements: &Statements,
    transitions: Vec<(Slot, &Transition)>,
    gathered: &mut Gathered,
) -> Result<UpdateColumns, Failure> {
    let now = crate::util::now_ms();
    let chains = by_task(transitions);
    let seqs: Vec<i64> = chains.iter().map(|(seq, _)| *seq).collect();
    let with_payload: Vec<i64> = chains
        .iter()
        .filter(|(_, chain)| chain.iter().any(|(_, t)| t.want_payload))
        .map(|(seq, _)| *seq)
        .collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&seqs, &with_payload];
    let (begun, rows) = futures::join!(client.batch_execute(BEGIN), client.query(&statements.lock, &params));
    begun.map_err(before)?;
    let rows = rows.map_err(before)?;
    let mut updates = UpdateColumns::default();
    let mut locked: HashMap<i64, &Row> = rows.iter().map(|r| (r.get(0), r)).collect();
    for (seq, chain) in chains {
        if let Some(r) = locked.remove(&seq) {
            gathered.decide(r, chain, now, &mut updates);
        }
    }
    Ok(updates)
}

/// What a transaction's last message carries.
struct Writes<'a> {
    updates: &'a UpdateColumns,
    inserts: &'a InsertColumns,
    events: &'a EventColumns,
    /// `COMMIT`, with `synchronous_commit` off when every write may be lost.
    commit: &'static str,
}

/// Sends the last update, the inserts and the history with `COMMIT`, all
/// at once (a failed statement turns the `COMMIT` into a rollback); when
/// logs must be pruned first, commits after pruning. Answers the insert's
/// rows.
async fn finish(
    client: &ClientWrapper,
    statements: &Statements,
    writes: Writes<'_>,
    budget: &LogBudget,
) -> Result<Vec<Row>, Failure> {
    let Writes {
        updates,
        inserts,
        events,
        commit: commit_sql,
    } = writes;
    let prune = budget.prune_target().is_some();
    let update = async {
        match updates.is_empty() {
            true => Ok(0),
            false => client.execute(&statements.update, &updates.params()).await,
        }
    };
    let insert = async {
        match inserts.is_empty() {
            true => Ok(Vec::new()),
            false => client.query(&statements.insert, &inserts.params()).await,
        }
    };
    let append = async {
        match events.is_empty() {
            true => Ok(0),
            false => client.execute(&statements.events, &events.params()).await,
        }
    };
    let commit = async {
        match prune {
            true => Ok(()),
            false => client.batch_execute(commit_sql).await,
        }
    };
    let (updated, inserted, appended, committed) = futures::join!(update, insert, append, commit);
    updated.map_err(before)?;
    appended.map_err(before)?;
    let rows = inserted.map_err(before)?;
    if prune {
        prune_logs(&**client, budget).await.map_err(Failure::Before)?;
        client
            .batch_execute(commit_sql)
            .await
            .map_err(|e| Failure::AtCommit(e.into()))?;
    } else {
        committed.map_err(|e| Failure::AtCommit(e.into()))?;
    }
    Ok(rows)
}

impl Gathered {
    /// Decides one task's transitions, in order, against its locked row
    /// `r`: each reads the row as the ones before it left it, and the
    /// task gets one update with every applied transition's event.
    fn decide(&mut self, r: &Row, chain: Vec<(Slot, &Transition)>, now: i64, updates: &mut UpdateColumns) {
        let (mut row, token) = row_from(r, true);
        let mut log_size = r.get::<_, Option<i32>>(22).unwrap_or(0).max(0) as u64;
        let mut event_id: i32 = r.get(23);
        let mut written: Option<(TaskState, TaskUpdate, bool)> = None;
        for (slot, t) in chain {
            let Some(mut p) = plan(t, row.clone(), token, now) else {
                continue;
            };
            if let Some(log) = &p.update.logs {
                self.log_sizes.push((log_size, log.len() as u64));
                log_size = log.len() as u64;
            }
            self.durable |= !replayable(p.next);
            event_id += 1;
            self.events.push(p.row.seq, event_id, p.next, now, &p.detail);
            self.changes.push(changed(&p.row));
            if let Some(task) = p.follow_up.take() {
                self.inserts.push((Origin::FollowUp(slot), task));
            }
            // A terminal state or a retry gives the node's lease up.
            let releases = p.next.is_terminal() || p.next == TaskState::Retrying;
            row = p.row.clone();
            p.update.apply_to(&mut row);
            if releases {
                row.lease_until_ms = 0;
            }
            written = Some(match written.take() {
                None => (p.next, p.update, releases),
                Some((_, before, released)) => (p.next, before.then(p.update), released || releases),
            });
            self.applied[slot.0][slot.1] = Some(Applied {
                state: p.next,
                row: p.row,
                follow_up_seq: None,
            });
        }
        if let Some((next, update, releases)) = written {
            updates.push(row.seq, next, &update, releases, event_id);
        }
    }

    /// The tasks to insert, each key once (a later one in the batch is a
    /// duplicate of the first).
    fn insert_columns(&self) -> InsertColumns {
        let mut seen = std::collections::HashSet::new();
        let mut columns = InsertColumns::default();
        for (_, t) in &self.inserts {
            if seen.insert(key_of(t)) {
                columns.push(t);
            }
        }
        columns
    }

    /// Each write's outcome, given the seqs of the keys the insert stored.
    fn answer(mut self, mut stored: HashMap<TaskKey, i64>, writes: usize) -> (Vec<TaskWritten>, Vec<TaskChange>) {
        let mut inserted: HashMap<usize, Result<i64>> = HashMap::new();
        for (origin, t) in std::mem::take(&mut self.inserts) {
            let outcome = match stored.remove(&key_of(&t)) {
                Some(seq) => {
                    self.changes.push(inserted_change(seq, &t));
                    Ok(seq)
                }
                None => Err(duplicate(&t)),
            };
            match (origin, outcome) {
                (Origin::Submitted(w), outcome) => {
                    inserted.insert(w, outcome);
                }
                (Origin::FollowUp((w, i)), Ok(seq)) => {
                    if let Some(a) = self.applied[w][i].as_mut() {
                        a.follow_up_seq = Some(seq);
                    }
                }
                // The destination already has a task with this id: the
                // delivery happened before (a retried transition).
                (Origin::FollowUp(_), Err(e)) => tracing::warn!(error = %e, "destination task not inserted"),
            }
        }
        debug_assert_eq!(self.applied.len(), writes);
        let written = self
            .applied
            .into_iter()
            .enumerate()
            .map(|(w, outcomes)| match inserted.remove(&w) {
                Some(outcome) => TaskWritten::Inserted(outcome),
                None => TaskWritten::Transitioned(outcomes),
            })
            .collect();
        (written, self.changes)
    }
}

/// Groups transitions by task, in seq order (the order every multi-row
/// write here locks rows in), each task's in the order they were queued.
fn by_task(transitions: Vec<(Slot, &Transition)>) -> Vec<(i64, Vec<(Slot, &Transition)>)> {
    let mut chains: std::collections::BTreeMap<i64, Vec<(Slot, &Transition)>> = Default::default();
    for (slot, t) in transitions {
        chains.entry(t.seq).or_default().push((slot, t));
    }
    chains.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(seq: i64) -> Transition {
        Transition::new(seq, &[TaskState::Running], TaskState::Succeeded, "")
    }

    #[test]
    fn transitions_group_by_task_in_seq_order_keeping_queue_order() {
        let ts = [to(7), to(3), to(7), to(5), to(7)];
        let slots: Vec<(Slot, &Transition)> = ts.iter().enumerate().map(|(i, t)| ((i, 0), t)).collect();
        let chains: Vec<(i64, Vec<usize>)> = by_task(slots)
            .into_iter()
            .map(|(seq, chain)| (seq, chain.iter().map(|((w, _), _)| *w).collect()))
            .collect();
        assert_eq!(chains, vec![(3, vec![1]), (5, vec![3]), (7, vec![0, 2, 4])]);
    }
}
