//! The in-memory queue: tasks waiting to run, taken in round-robin over
//! functions under a per-function limit.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::FnKey;
use crate::store::TaskRow;
use crate::tasks::{TaskKind, TaskState};

/// A task waiting in the in-memory queue (the store holds the rest).
#[derive(Debug, Clone)]
pub(super) struct QueuedTask {
    pub(super) seq: i64,
    pub(super) service: String,
    pub(super) function: String,
    pub(super) qualifier: String,
    pub(super) invocation_id: String,
    pub(super) request_id: String,
    pub(super) created_ms: i64,
    pub(super) attempts: u32,
    /// `Enqueued`, or `Dequeued`/`Retrying` for tasks that skip the
    /// dequeue step (recovered, or back from a backoff).
    pub(super) state: TaskState,
    /// What the payload is: an event, a recorded HTTP request, or an
    /// orchestration's activity call (never retried here, no destinations,
    /// its outcome goes to the activity listener).
    pub(super) kind: TaskKind,
    /// The lease token this node claimed the task under (shared store);
    /// every transition of the task carries it.
    pub(super) fence: Option<i64>,
    /// The payload, when the read that found the task brought it (a
    /// claim on a shared store), so the attempt need not read it again.
    pub(super) payload: Option<Bytes>,
}

impl QueuedTask {
    pub(super) fn from_row(row: &TaskRow) -> QueuedTask {
        QueuedTask {
            seq: row.seq,
            service: row.service.clone(),
            function: row.function.clone(),
            qualifier: row.qualifier.clone(),
            invocation_id: row.invocation_id.clone(),
            request_id: row.request_id.clone(),
            created_ms: row.created_ms,
            attempts: row.attempts,
            state: row.status,
            kind: row.kind,
            fence: None,
            payload: row.payload.clone(),
        }
    }

    pub(super) fn key(&self) -> FnKey {
        (self.service.clone(), self.function.clone())
    }
}

/// Ready tasks: FIFO per function, functions served round-robin, so one
/// function's backlog never blocks another's.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) by_fn: HashMap<FnKey, VecDeque<QueuedTask>>,
    pub(super) ring: VecDeque<FnKey>,
    pub(super) in_flight: HashMap<FnKey, usize>,
    pub(super) len: usize,
}

impl Queue {
    pub(super) fn push(&mut self, t: QueuedTask) {
        let key = t.key();
        let q = self.by_fn.entry(key.clone()).or_default();
        if q.is_empty() {
            self.ring.push_back(key);
        }
        q.push_back(t);
        self.len += 1;
    }

    /// The next task whose function is under its in-flight limit.
    pub(super) fn pop_ready(&mut self, per_function: usize) -> Option<QueuedTask> {
        for _ in 0..self.ring.len() {
            let key = self.ring.pop_front()?;
            let busy = self.in_flight.get(&key).copied().unwrap_or(0);
            let Some(q) = self.by_fn.get_mut(&key) else { continue };
            if busy < per_function
                && let Some(t) = q.pop_front()
            {
                self.len -= 1;
                *self.in_flight.entry(key.clone()).or_default() += 1;
                if q.is_empty() {
                    self.by_fn.remove(&key);
                } else {
                    self.ring.push_back(key);
                }
                return Some(t);
            }
            self.ring.push_back(key);
        }
        None
    }

    pub(super) fn done(&mut self, key: &FnKey) {
        if let Some(n) = self.in_flight.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(seq: i64, f: &str) -> QueuedTask {
        QueuedTask {
            seq,
            service: "s".into(),
            function: f.into(),
            qualifier: "LATEST".into(),
            invocation_id: format!("t{seq}"),
            request_id: String::new(),
            created_ms: 0,
            attempts: 0,
            state: TaskState::Enqueued,
            kind: TaskKind::Event,
            fence: None,
            payload: None,
        }
    }

    #[test]
    fn queue_round_robins_and_respects_per_function_limits() {
        let mut q = Queue::default();
        for i in 0..3 {
            q.push(task(i, "a"));
        }
        q.push(task(10, "b"));
        assert_eq!(q.pop_ready(1).unwrap().seq, 0);
        // a is at its limit of 1: b goes next, then nothing.
        assert_eq!(q.pop_ready(1).unwrap().seq, 10);
        assert!(q.pop_ready(1).is_none());
        q.done(&("s".into(), "a".into()));
        assert_eq!(q.pop_ready(1).unwrap().seq, 1);
        assert_eq!(q.len, 1);
    }
}
