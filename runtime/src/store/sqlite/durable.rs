//! Orchestration persistence: instance rows, their history (journal),
//! durable timers. Each operation decides against the stored row inside the
//! writer's transaction, like task transitions, so a terminate racing a run's
//! commit resolves to one legal history.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::orch_rows::COLUMNS;
use super::super::{
    Committed, ControlOutcome, NewOrchestration, NewTask, OrchFilter, OrchRow, Result, RunCommit, StoreError,
};
use super::SqliteStore;
use super::tasks::insert as insert_task;
use crate::journal::{HistoryEvent, Recorded, RuntimeStatus, awaits_outcome};

pub(super) fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrchRow> {
    let status: String = r.get(10)?;
    Ok(OrchRow {
        rid: r.get(0)?,
        instance_id: r.get(1)?,
        name: r.get(2)?,
        service: r.get(3)?,
        function: r.get(4)?,
        wasm_sha256: r.get(5)?,
        memory_mb: r.get::<_, i64>(6)? as u64,
        timeout_s: r.get::<_, i64>(7)? as u64,
        version: r.get(8)?,
        generation: r.get::<_, i64>(9)? as u32,
        status: RuntimeStatus::parse(&status).unwrap_or(RuntimeStatus::Failed),
        input: r.get(11)?,
        output: r.get(12)?,
        custom_status: r.get(13)?,
        created_ms: r.get(14)?,
        updated_ms: r.get(15)?,
        next_seq: r.get(16)?,
        pending: r.get::<_, i64>(17)? != 0,
    })
}

/// Appends events at the row's `next_seq` and advances it.
pub(super) fn append(c: &Connection, rid: i64, next_seq: &mut i64, ts: i64, events: &[HistoryEvent]) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO orchestration_history(rid, seq, event_type, ts_ms, step, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in events {
        let body = serde_json::to_string(e)?;
        stmt.execute(params![rid, *next_seq, e.type_name(), ts, e.step(), body])?;
        *next_seq += 1;
    }
    Ok(())
}

pub(super) fn get_row(c: &Connection, where_: &str, key: &dyn rusqlite::ToSql) -> Result<Option<OrchRow>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM orchestrations WHERE {where_}"))?
            .query_row([key], row_from)
            .optional()?,
    )
}

pub(super) fn load_history(c: &Connection, rid: i64) -> Result<Vec<Recorded>> {
    let mut stmt =
        c.prepare_cached("SELECT seq, ts_ms, body FROM orchestration_history WHERE rid = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([rid], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, ts_ms, body) = row?;
        out.push(Recorded {
            seq,
            ts_ms,
            event: serde_json::from_str(&body)?,
        });
    }
    Ok(out)
}

fn clear_execution(c: &Connection, rid: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM orchestration_history WHERE rid = ?1")?
        .execute([rid])?;
    c.prepare_cached("DELETE FROM orchestration_timers WHERE rid = ?1")?
        .execute([rid])?;
    Ok(())
}

pub(super) fn insert_tasks(c: &Connection, tasks: Vec<NewTask>) -> Result<Vec<(i64, NewTask)>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match insert_task(c, &t) {
            Ok(seq) => out.push((seq, t)),
            // Already scheduled by an earlier commit: exactly once.
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl SqliteStore {
    /// Creates an instance (or replaces a finished one with that id). A
    /// non-finished instance with the id → `Err(Duplicate)` with the
    /// extension's message.
    pub async fn orch_start(&self, o: NewOrchestration) -> Result<OrchRow> {
        self.write(move |c| {
            let existing = get_row(c, "instance_id = ?1", &o.instance_id)?;
            match &existing {
                Some(row) if !row.status.is_terminal() => {
                    return Err(StoreError::Duplicate(format!(
                        "An Orchestration instance with the status {} already exists.",
                        row.status.as_str()
                    )));
                }
                Some(row) => clear_execution(c, row.rid)?,
                None => {}
            }
            // A finished instance with this id is replaced: same rid, next
            // generation, fresh history.
            let rid: i64 = c
                .prepare_cached(
                    "INSERT INTO orchestrations(instance_id, name, service, function, wasm_sha256, memory_mb, timeout_s,
                     version, status, input, created_ms, updated_ms, pending)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'Pending', ?9, ?10, ?10, 1)
                     ON CONFLICT(instance_id) DO UPDATE SET name = excluded.name, service = excluded.service,
                       function = excluded.function, wasm_sha256 = excluded.wasm_sha256,
                       memory_mb = excluded.memory_mb, timeout_s = excluded.timeout_s, version = excluded.version,
                       generation = generation + 1, status = 'Pending', input = excluded.input, output = NULL,
                       custom_status = NULL, created_ms = excluded.created_ms, updated_ms = excluded.updated_ms,
                       next_seq = 0, pending = 1
                     RETURNING rid",
                )?
                .query_row(
                    params![
                        o.instance_id,
                        o.name,
                        o.service,
                        o.function,
                        o.wasm_sha256,
                        o.memory_mb as i64,
                        o.timeout_s as i64,
                        o.version,
                        o.input,
                        o.now_ms
                    ],
                    |r| r.get(0),
                )?;
            let mut next = 0;
            append(
                c,
                rid,
                &mut next,
                o.now_ms,
                &[HistoryEvent::ExecutionStarted {
                    name: o.name.clone(),
                    input: o.input.clone(),
                }],
            )?;
            c.prepare_cached("UPDATE orchestrations SET next_seq = ?2 WHERE rid = ?1")?
                .execute(params![rid, next])?;
            get_row(c, "rid = ?1", &rid)?
                .ok_or_else(|| StoreError::Vanished("the instance vanished while it was being started".into()))
        })
        .await
    }

    pub async fn orch_get(&self, instance_id: &str) -> Result<Option<OrchRow>> {
        let id = instance_id.to_string();
        self.read(move |c| get_row(c, "instance_id = ?1", &id)).await
    }

    /// The instance and its history, read together.
    pub async fn orch_load(&self, rid: i64) -> Result<Option<(OrchRow, Vec<Recorded>)>> {
        self.read(move |c| {
            let Some(row) = get_row(c, "rid = ?1", &rid)? else {
                return Ok(None);
            };
            let history = load_history(c, rid)?;
            Ok(Some((row, history)))
        })
        .await
    }

    pub async fn orch_history(&self, rid: i64) -> Result<Vec<Recorded>> {
        self.read(move |c| load_history(c, rid)).await
    }

    /// Marks a Pending instance Running (its first run has begun).
    pub async fn orch_mark_running(&self, rid: i64, now_ms: i64) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE orchestrations SET status = 'Running', updated_ms = ?2 WHERE rid = ?1 AND status = 'Pending'",
            )?
            .execute(params![rid, now_ms])?;
            Ok(())
        })
        .await
    }

    /// Records a run's outcome; `None` when the instance moved on meanwhile
    /// (terminated, suspended, restarted) and the run no longer counts.
    pub async fn orch_commit(&self, run: RunCommit) -> Result<Option<Committed>> {
        self.write(move |c| {
            let Some(row) = get_row(c, "rid = ?1", &run.rid)? else {
                return Ok(None);
            };
            if row.generation != run.generation
                || !matches!(row.status, RuntimeStatus::Running | RuntimeStatus::Pending)
            {
                return Ok(None);
            }
            let mut next = row.next_seq;
            let arrived_meanwhile = row.next_seq > run.loaded_seq;
            append(c, run.rid, &mut next, run.now_ms, &run.events)?;
            let custom = run.custom_status.or(row.custom_status);
            if let Some(input) = run.continue_as_new {
                clear_execution(c, run.rid)?;
                let generation = row.generation + 1;
                let mut next = 0;
                append(
                    c,
                    run.rid,
                    &mut next,
                    run.now_ms,
                    &[HistoryEvent::ExecutionStarted {
                        name: row.name.clone(),
                        input: Some(input.clone()),
                    }],
                )?;
                c.prepare_cached(
                    "UPDATE orchestrations SET generation = ?2, status = 'Running', input = ?3, output = NULL,
                     custom_status = ?4, updated_ms = ?5, next_seq = ?6, pending = 1 WHERE rid = ?1",
                )?
                .execute(params![run.rid, generation, input, custom, run.now_ms, next])?;
                return Ok(Some(Committed {
                    run_again: true,
                    tasks: Vec::new(),
                    generation,
                }));
            }
            let tasks = insert_tasks(c, run.tasks)?;
            {
                let mut stmt = c.prepare_cached(
                    "INSERT OR IGNORE INTO orchestration_timers(rid, generation, step, fire_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (step, fire) in &run.timers {
                    stmt.execute(params![run.rid, run.generation, step, fire])?;
                }
            }
            let (status, output, pending) = match &run.finished {
                Some((status, output)) => {
                    c.prepare_cached("DELETE FROM orchestration_timers WHERE rid = ?1")?
                        .execute([run.rid])?;
                    (*status, output.clone(), false)
                }
                None => (RuntimeStatus::Running, None, arrived_meanwhile),
            };
            c.prepare_cached(
                "UPDATE orchestrations SET status = ?2, output = ?3, custom_status = ?4, updated_ms = ?5,
                 next_seq = ?6, pending = ?7 WHERE rid = ?1",
            )?
            .execute(params![
                run.rid,
                status.as_str(),
                output,
                custom,
                run.now_ms,
                next,
                pending as i64
            ])?;
            Ok(Some(Committed {
                run_again: pending,
                tasks,
                generation: run.generation,
            }))
        })
        .await
    }

    /// Appends an activity outcome or a fired timer to a running instance;
    /// `Some(runnable)` when it was recorded (`runnable`: not suspended).
    /// Duplicates (a result delivered twice, a timer already fired, a
    /// stale attempt) are dropped.
    pub async fn orch_deliver(
        &self,
        rid: i64,
        generation: u32,
        task_id: Option<String>,
        event: HistoryEvent,
        now_ms: i64,
    ) -> Result<Option<bool>> {
        self.write(move |c| {
            let Some(row) = get_row(c, "rid = ?1", &rid)? else {
                return Ok(None);
            };
            if row.generation != generation || row.status.is_terminal() {
                return Ok(None);
            }
            match &event {
                HistoryEvent::TimerFired { step, .. } => {
                    let removed = c
                        .prepare_cached(
                            "DELETE FROM orchestration_timers WHERE rid = ?1 AND generation = ?2 AND step = ?3",
                        )?
                        .execute(params![rid, generation, step])?;
                    if removed == 0 {
                        return Ok(None);
                    }
                }
                HistoryEvent::TaskCompleted { step, .. } | HistoryEvent::TaskFailed { step, .. } => {
                    let last: Option<String> = c
                        .prepare_cached(
                            "SELECT body FROM orchestration_history WHERE rid = ?1 AND step = ?2
                             ORDER BY seq DESC LIMIT 1",
                        )?
                        .query_row(params![rid, step], |r| r.get(0))
                        .optional()?;
                    let last = last
                        .map(|body| serde_json::from_str::<HistoryEvent>(&body))
                        .transpose()?;
                    if !awaits_outcome(last.as_ref(), task_id.as_deref()) {
                        return Ok(None);
                    }
                }
                _ => {}
            }
            let mut next = row.next_seq;
            append(c, rid, &mut next, now_ms, std::slice::from_ref(&event))?;
            c.prepare_cached("UPDATE orchestrations SET next_seq = ?2, pending = 1, updated_ms = ?3 WHERE rid = ?1")?
                .execute(params![rid, next, now_ms])?;
            Ok(Some(row.status != RuntimeStatus::Suspended))
        })
        .await
    }

    /// Schedules another attempt of a failed activity step (retry policy).
    pub async fn orch_retry(
        &self,
        rid: i64,
        generation: u32,
        event: HistoryEvent,
        task: NewTask,
        now_ms: i64,
    ) -> Result<Option<(i64, NewTask)>> {
        self.write(move |c| {
            let Some(row) = get_row(c, "rid = ?1", &rid)? else {
                return Ok(None);
            };
            if row.generation != generation || row.status.is_terminal() {
                return Ok(None);
            }
            let mut next = row.next_seq;
            append(c, rid, &mut next, now_ms, std::slice::from_ref(&event))?;
            c.prepare_cached("UPDATE orchestrations SET next_seq = ?2, updated_ms = ?3 WHERE rid = ?1")?
                .execute(params![rid, next, now_ms])?;
            Ok(insert_tasks(c, vec![task])?.pop())
        })
        .await
    }

    /// Raises an event: `Err(NotFound)`-like outcomes as [`ControlOutcome`].
    pub async fn orch_raise(
        &self,
        instance_id: &str,
        name: String,
        data: String,
        now_ms: i64,
    ) -> Result<ControlOutcome> {
        let id = instance_id.to_string();
        self.write(move |c| {
            let Some(row) = get_row(c, "instance_id = ?1", &id)? else {
                return Ok(ControlOutcome::NotFound);
            };
            if row.status.is_terminal() {
                return Ok(ControlOutcome::Gone(row.status));
            }
            let mut next = row.next_seq;
            append(
                c,
                row.rid,
                &mut next,
                now_ms,
                &[HistoryEvent::EventRaised { name, input: data }],
            )?;
            c.prepare_cached("UPDATE orchestrations SET next_seq = ?2, pending = 1, updated_ms = ?3 WHERE rid = ?1")?
                .execute(params![row.rid, next, now_ms])?;
            let row = get_row(c, "rid = ?1", &row.rid)?.unwrap_or(row);
            Ok(ControlOutcome::Done(Box::new(row), Vec::new()))
        })
        .await
    }

    pub async fn orch_list(&self, f: OrchFilter) -> Result<Vec<OrchRow>> {
        self.read(move |c| {
            let mut sql = format!("SELECT {COLUMNS} FROM orchestrations WHERE 1 = 1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(from) = f.created_from_ms {
                args.push(Box::new(from));
                sql.push_str(&format!(" AND created_ms >= ?{}", args.len()));
            }
            if let Some(to) = f.created_to_ms {
                args.push(Box::new(to));
                sql.push_str(&format!(" AND created_ms <= ?{}", args.len()));
            }
            if !f.statuses.is_empty() {
                let list: Vec<String> = f.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
                sql.push_str(&format!(" AND status IN ({})", list.join(",")));
            }
            if let Some(prefix) = &f.id_prefix {
                args.push(Box::new(prefix.clone()));
                sql.push_str(&format!(
                    " AND substr(instance_id, 1, length(?{n})) = ?{n}",
                    n = args.len()
                ));
            }
            if let Some((ms, id)) = &f.after {
                args.push(Box::new(*ms));
                args.push(Box::new(id.clone()));
                sql.push_str(&format!(
                    " AND (created_ms, instance_id) > (?{}, ?{})",
                    args.len() - 1,
                    args.len()
                ));
            }
            args.push(Box::new(f.limit as i64));
            sql.push_str(&format!(" ORDER BY created_ms, instance_id LIMIT ?{}", args.len()));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())), row_from)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Deletes instances (rows, history, timers) matching `f`, or the one
    /// named `instance_id`; answers how many.
    pub async fn orch_purge(&self, instance_id: Option<String>, f: OrchFilter) -> Result<usize> {
        self.write(move |c| {
            let rids: Vec<i64> = match instance_id {
                Some(id) => get_row(c, "instance_id = ?1", &id)?
                    .map(|r| r.rid)
                    .into_iter()
                    .collect(),
                None => {
                    let statuses: Vec<String> = f.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
                    let mut stmt = c.prepare(&format!(
                        "SELECT rid FROM orchestrations WHERE created_ms >= ?1 AND created_ms <= ?2 AND status IN ({})",
                        statuses.join(",")
                    ))?;
                    let rows = stmt.query_map(
                        params![f.created_from_ms.unwrap_or(0), f.created_to_ms.unwrap_or(i64::MAX)],
                        |r| r.get(0),
                    )?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()?
                }
            };
            for rid in &rids {
                clear_execution(c, *rid)?;
                c.prepare_cached("DELETE FROM orchestrations WHERE rid = ?1")?
                    .execute([rid])?;
            }
            Ok(rids.len())
        })
        .await
    }
}
