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
//! a single transition is. Transitions of one task in one batch (a Stop
//! beside a runner's change, or a caller's own list) go in successive
//! rounds, each reading the row the previous round wrote, in the order
//! they were queued.

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

/// Opens a batch's transaction. Its statements are planned for the rows
/// at hand (`force_custom_plan`) rather than with the generic plan cached
/// on the connection: a plan cached while the table was small joins the
/// batch's arrays against a sequential scan of every task, and nothing
/// replans it as the table grows until the next `ANALYZE`.
const BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode TO force_custom_plan";

/// Opens the transaction and runs the rounds of transitions: each round's
/// rows locked and its transitions decided, the update of every round but
/// the last sent before the next round reads. Answers the last round's
/// update, still to send.
async fn lock_and_decide(
    client: &ClientWrapper,
    statements: &Statements,
    transitions: Vec<(Slot, &Transition)>,
    gathered: &mut Gathered,
) -> Result<UpdateColumns, Failure> {
    let now = crate::util::now_ms();
    let mut updates = UpdateColumns::default();
    for (n, round) in rounds(transitions).into_iter().enumerate() {
        let seqs: Vec<i64> = round.iter().map(|(_, t)| t.seq).collect();
        let with_payload: Vec<i64> = round
            .iter()
            .filter(|(_, t)| t.want_payload)
            .map(|(_, t)| t.seq)
            .collect();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&seqs, &with_payload];
        // Sent when first polled: after the previous round's update.
        let lock = client.query(&statements.lock, &params);
        let rows = if n == 0 {
            let (begun, rows) = futures::join!(client.batch_execute(BEGIN), lock);
            begun.map_err(before)?;
            rows.map_err(before)?
        } else {
            // This round reads what the previous one wrote.
            if !updates.is_empty() {
                client
                    .execute(&statements.update, &updates.params())
                    .await
                    .map_err(before)?;
            }
            updates = UpdateColumns::default();
            lock.await.map_err(before)?
        };
        gathered.decide(&rows, round, now, &mut updates);
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
    /// Decides one round's transitions against its locked `rows`.
    fn decide(&mut self, rows: &[Row], round: Vec<(Slot, &Transition)>, now: i64, updates: &mut UpdateColumns) {
        let mut locked: HashMap<i64, &Row> = rows.iter().map(|r| (r.get(0), r)).collect();
        for (slot, t) in round {
            let Some(r) = locked.remove(&t.seq) else { continue };
            let (row, token) = row_from(r, t.want_payload);
            let event_id: i32 = r.get::<_, i32>(23) + 1;
            let Some(mut p) = plan(t, row, token, now) else {
                continue;
            };
            if let Some(log) = &p.update.logs {
                let old: Option<i32> = r.get(22);
                self.log_sizes.push((old.unwrap_or(0).max(0) as u64, log.len() as u64));
            }
            self.durable |= !replayable(p.next);
            updates.push(p.row.seq, p.next, &p.update, event_id);
            self.events.push(p.row.seq, event_id, p.next, now, &p.detail);
            self.changes.push(changed(&p.row));
            if let Some(task) = p.follow_up.take() {
                self.inserts.push((Origin::FollowUp(slot), task));
            }
            self.applied[slot.0][slot.1] = Some(Applied {
                state: p.next,
                row: p.row,
                follow_up_seq: None,
            });
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

/// Splits transitions into rounds in which each task appears once; a
/// task's n-th transition goes in round n, so its transitions apply in
/// order, and every round locks only rows the first round locked.
fn rounds(transitions: Vec<(Slot, &Transition)>) -> Vec<Vec<(Slot, &Transition)>> {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut rounds: Vec<Vec<(Slot, &Transition)>> = Vec::new();
    for (slot, t) in transitions {
        let n = seen.entry(t.seq).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push((slot, t));
        *n += 1;
    }
    for round in &mut rounds {
        round.sort_by_key(|(_, t)| t.seq);
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(seq: i64) -> Transition {
        Transition::new(seq, &[TaskState::Running], TaskState::Succeeded, "")
    }

    #[test]
    fn a_task_appears_once_per_round_in_queue_order() {
        let ts = [to(7), to(3), to(7), to(5), to(7)];
        let slots: Vec<(Slot, &Transition)> = ts.iter().enumerate().map(|(i, t)| ((i, 0), t)).collect();
        let rounds = rounds(slots);
        let seqs: Vec<Vec<(i64, usize)>> = rounds
            .iter()
            .map(|r| r.iter().map(|((w, _), t)| (t.seq, *w)).collect())
            .collect();
        // Sorted by seq within a round; a task's later transitions in
        // later rounds, in the order they came.
        assert_eq!(seqs, vec![vec![(3, 1), (5, 3), (7, 0)], vec![(7, 2)], vec![(7, 4)]]);
    }
}
