//! Task writes as column arrays: the statements one batch runs (each
//! `unnest($1::bigint[], …)` over one array per column) and the arrays
//! they take.

use std::collections::HashMap;
use std::sync::LazyLock;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Statement, Transaction};

use super::super::{NewTask, Result, StoreError, TaskUpdate};
use super::tasks::{COLUMNS, queue_of};
use crate::tasks::TaskState;

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// The rows of a round, locked in seq order (as every multi-row write here
/// locks them, so two writers never wait on each other in a cycle), with
/// the payload where asked, the log size and the history counter.
static LOCK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, CASE WHEN seq = ANY($2) THEN payload END, octet_length(logs), events
         FROM tasks WHERE seq = ANY($1) ORDER BY seq FOR UPDATE"
    )
});

const UPDATE: &str = "UPDATE tasks t SET status = u.status,
        attempts = COALESCE(u.attempts, t.attempts),
        next_run_ms = COALESCE(u.next_run_ms, t.next_run_ms),
        end_ms = COALESCE(u.end_ms, t.end_ms),
        error = COALESCE(u.error, t.error),
        result = COALESCE(u.result, t.result),
        destination_status = COALESCE(u.destination_status, t.destination_status),
        instance_id = COALESCE(u.instance_id, t.instance_id),
        duration_ms = COALESCE(u.duration_ms, t.duration_ms),
        logs = COALESCE(u.logs, t.logs),
        fuel_consumed = COALESCE(u.fuel_consumed, t.fuel_consumed),
        lease_owner = CASE WHEN u.releases THEN NULL ELSE t.lease_owner END,
        lease_until_ms = CASE WHEN u.releases THEN 0 ELSE t.lease_until_ms END,
        events = u.events
    FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::text[],
                $7::bytea[], $8::text[], $9::text[], $10::bigint[], $11::bytea[], $12::bigint[],
                $13::bool[], $14::int[])
         AS u(seq, status, attempts, next_run_ms, end_ms, error, result, destination_status,
              instance_id, duration_ms, logs, fuel_consumed, releases, events)
    WHERE t.seq = u.seq";

/// New tasks and their `Enqueued` events in one statement (atomic on its
/// own), in key order so two writers inserting the same ids wait on each
/// other in one order; answers the keys that were new.
const INSERT: &str = "WITH new AS (
        INSERT INTO tasks (service, function, qualifier, invocation_id, stateful, kind, status, payload,
                           request_id, created_ms, next_run_ms, events, queue)
        SELECT service, function, qualifier, invocation_id, stateful, kind, 'Enqueued', payload,
               request_id, created_ms, due_ms, 1, queue
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::bytea[],
                    $8::text[], $9::bigint[], $10::bigint[], $11::smallint[])
             AS n(service, function, qualifier, invocation_id, stateful, kind, payload,
                  request_id, created_ms, due_ms, queue)
        ORDER BY service, function, invocation_id
        ON CONFLICT (service, function, invocation_id) DO NOTHING
        RETURNING seq, service, function, invocation_id, created_ms),
    history AS (
        INSERT INTO task_events (task_seq, event_id, event_type, ts_ms, detail)
        SELECT new.seq, 1, 'Enqueued', new.created_ms, d.detail
        FROM new JOIN unnest($1::text[], $2::text[], $4::text[], $12::text[])
                      AS d(service, function, invocation_id, detail)
                 USING (service, function, invocation_id))
    SELECT seq, service, function, invocation_id FROM new";

const EVENTS: &str = "INSERT INTO task_events (task_seq, event_id, event_type, ts_ms, detail)
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::text[])";

/// A batch's statements, prepared once per connection (cached), so none
/// of them needs a round trip of its own to prepare while a batch
/// pipelines them.
pub(super) struct Statements {
    pub lock: Statement,
    pub update: Statement,
    pub insert: Statement,
    pub events: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &ClientWrapper) -> Result<Statements> {
        Ok(Statements {
            lock: client.prepare_cached(&LOCK).await?,
            update: client.prepare_cached(UPDATE).await?,
            insert: client.prepare_cached(INSERT).await?,
            events: client.prepare_cached(EVENTS).await?,
        })
    }
}

/// Inserts `t` with its `Enqueued` event inside `tx` (an orchestration's
/// commit scheduling an activity). A duplicate id is
/// [`StoreError::Duplicate`] without aborting the transaction (`ON
/// CONFLICT DO NOTHING`), so a commit that meets one (an activity
/// scheduled by an earlier commit) goes on.
pub(super) async fn insert_in(tx: &Transaction<'_>, t: &NewTask) -> Result<i64> {
    let mut columns = InsertColumns::default();
    columns.push(t);
    match tx.query_opt(INSERT, &columns.params()).await? {
        Some(row) => Ok(row.get(0)),
        None => Err(duplicate(t)),
    }
}

/// The error of a task whose id exists.
pub(super) fn duplicate(t: &NewTask) -> StoreError {
    StoreError::Duplicate(format!(
        "invocation '{}' already exists for function {}/{}",
        t.invocation_id, t.service, t.function
    ))
}

/// A task's key: (service, function, invocation id).
pub(super) type TaskKey = (String, String, String);

pub(super) fn key_of(t: &NewTask) -> TaskKey {
    (t.service.clone(), t.function.clone(), t.invocation_id.clone())
}

/// New tasks as column arrays.
#[derive(Default)]
pub(super) struct InsertColumns {
    service: Vec<String>,
    function: Vec<String>,
    qualifier: Vec<String>,
    invocation_id: Vec<String>,
    stateful: Vec<bool>,
    kind: Vec<&'static str>,
    payload: Vec<Vec<u8>>,
    request_id: Vec<String>,
    created_ms: Vec<i64>,
    due_ms: Vec<i64>,
    queue: Vec<i16>,
    detail: Vec<String>,
}

impl InsertColumns {
    pub(super) fn push(&mut self, t: &NewTask) {
        self.service.push(t.service.clone());
        self.function.push(t.function.clone());
        self.qualifier.push(t.qualifier.clone());
        self.invocation_id.push(t.invocation_id.clone());
        self.stateful.push(t.stateful);
        self.kind.push(t.kind.as_str());
        self.payload.push(t.payload.to_vec());
        self.request_id.push(text(&t.request_id));
        self.created_ms.push(t.created_ms);
        self.due_ms.push(t.due_ms);
        self.queue.push(queue_of(&t.service, &t.function));
        self.detail.push(text(&t.detail));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.service.is_empty()
    }

    pub(super) fn params(&self) -> Params<'_> {
        vec![
            &self.service,
            &self.function,
            &self.qualifier,
            &self.invocation_id,
            &self.stateful,
            &self.kind,
            &self.payload,
            &self.request_id,
            &self.created_ms,
            &self.due_ms,
            &self.queue,
            &self.detail,
        ]
    }

    /// The seq of each key the insert answered (the new ones).
    pub(super) fn inserted(rows: &[tokio_postgres::Row]) -> HashMap<TaskKey, i64> {
        rows.iter()
            .map(|r| ((r.get(1), r.get(2), r.get(3)), r.get(0)))
            .collect()
    }
}

/// Row updates as column arrays (`None`: keep the stored value).
#[derive(Default)]
pub(super) struct UpdateColumns {
    seq: Vec<i64>,
    status: Vec<&'static str>,
    attempts: Vec<Option<i32>>,
    next_run_ms: Vec<Option<i64>>,
    end_ms: Vec<Option<i64>>,
    error: Vec<Option<String>>,
    result: Vec<Option<Vec<u8>>>,
    destination_status: Vec<Option<String>>,
    instance_id: Vec<Option<String>>,
    duration_ms: Vec<Option<i64>>,
    logs: Vec<Option<Vec<u8>>>,
    fuel_consumed: Vec<Option<i64>>,
    releases: Vec<bool>,
    events: Vec<i32>,
}

impl UpdateColumns {
    /// Task `seq` moves to `next` with `u`, giving up its node's lease if
    /// `releases`; `events` is its history counter afterwards.
    pub(super) fn push(&mut self, seq: i64, next: TaskState, u: &TaskUpdate, releases: bool, events: i32) {
        self.seq.push(seq);
        self.status.push(next.as_str());
        self.attempts.push(u.attempts.map(|a| a as i32));
        self.next_run_ms.push(u.next_run_ms);
        self.end_ms.push(u.end_ms);
        self.error.push(u.error.as_deref().map(text));
        self.result.push(u.result.as_ref().map(|b| b.to_vec()));
        self.destination_status.push(u.destination_status.as_deref().map(text));
        self.instance_id.push(u.instance_id.as_deref().map(text));
        self.duration_ms.push(u.duration_ms);
        self.logs.push(u.logs.as_ref().map(|b| b.to_vec()));
        self.fuel_consumed.push(u.fuel_consumed.map(|f| f as i64));
        self.releases.push(releases);
        self.events.push(events);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    pub(super) fn params(&self) -> Params<'_> {
        vec![
            &self.seq,
            &self.status,
            &self.attempts,
            &self.next_run_ms,
            &self.end_ms,
            &self.error,
            &self.result,
            &self.destination_status,
            &self.instance_id,
            &self.duration_ms,
            &self.logs,
            &self.fuel_consumed,
            &self.releases,
            &self.events,
        ]
    }
}

/// History events as column arrays.
#[derive(Default)]
pub(super) struct EventColumns {
    task_seq: Vec<i64>,
    event_id: Vec<i32>,
    event_type: Vec<&'static str>,
    ts_ms: Vec<i64>,
    detail: Vec<String>,
}

impl EventColumns {
    pub(super) fn push(&mut self, seq: i64, event_id: i32, state: TaskState, ts_ms: i64, detail: &str) {
        self.task_seq.push(seq);
        self.event_id.push(event_id);
        self.event_type.push(state.as_str());
        self.ts_ms.push(ts_ms);
        self.detail.push(text(detail));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.task_seq.is_empty()
    }

    pub(super) fn params(&self) -> Params<'_> {
        vec![
            &self.task_seq,
            &self.event_id,
            &self.event_type,
            &self.ts_ms,
            &self.detail,
        ]
    }
}

/// `s` as PostgreSQL text, which cannot hold NUL (a guest's error message
/// may): one such string would fail the whole batch.
fn text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_cannot_reach_postgres_text() {
        assert_eq!(text("a\0b"), "a\u{fffd}b");
        assert_eq!(text("plain"), "plain");
    }
}
