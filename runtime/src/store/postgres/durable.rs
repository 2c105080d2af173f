//! Orchestration persistence on PostgreSQL: instance rows, their history
//! (journal), durable timers. Each operation locks the instance's row
//! (`FOR UPDATE`) and decides against it, as the embedded store decides on
//! its single writer, so a terminate racing a run's commit resolves to one
//! legal history whichever nodes they come from.

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Transaction};

use super::super::orch_rows::COLUMNS;
use super::super::{
    Committed, ControlOutcome, NewOrchestration, NewTask, OrchFilter, OrchRow, Result, RunCommit, StoreError,
};
use super::PgStore;
use super::task_columns::insert_in;
use super::tasks::inserted_change;
use crate::journal::{HistoryEvent, Recorded, RuntimeStatus, awaits_outcome};

pub(super) fn row_from(r: &Row) -> OrchRow {
    let status: String = r.get(10);
    OrchRow {
        rid: r.get(0),
        instance_id: r.get(1),
        name: r.get(2),
        service: r.get(3),
        function: r.get(4),
        wasm_sha256: r.get(5),
        memory_mb: r.get::<_, i32>(6).max(0) as u64,
        timeout_s: r.get::<_, i32>(7).max(0) as u64,
        version: r.get(8),
        generation: r.get::<_, i32>(9).max(0) as u32,
        status: RuntimeStatus::parse(&status).unwrap_or(RuntimeStatus::Failed),
        input: r.get(11),
        output: r.get(12),
        custom_status: r.get(13),
        created_ms: r.get(14),
        updated_ms: r.get(15),
        next_seq: r.get(16),
        pending: r.get(17),
    }
}

/// The instance whose `column` is `key`, its row locked for the transaction.
pub(super) async fn lock_row(tx: &Transaction<'_>, column: &str, key: &(dyn ToSql + Sync)) -> Result<Option<OrchRow>> {
    let sql = format!("SELECT {COLUMNS} FROM orchestrations WHERE {column} = $1 FOR UPDATE");
    Ok(tx.query_opt(&sql, &[key]).await?.map(|r| row_from(&r)))
}

async fn read_row(c: &impl GenericClient, column: &str, key: &(dyn ToSql + Sync)) -> Result<Option<OrchRow>> {
    let sql = format!("SELECT {COLUMNS} FROM orchestrations WHERE {column} = $1");
    Ok(c.query_opt(&sql, &[key]).await?.map(|r| row_from(&r)))
}

/// Appends events at the row's `next_seq` and advances it.
pub(super) async fn append(
    c: &impl GenericClient,
    rid: i64,
    next_seq: &mut i64,
    ts: i64,
    events: &[HistoryEvent],
) -> Result<()> {
    for e in events {
        let body = serde_json::to_string(e)?;
        let step = e.step().map(i64::from);
        c.execute(
            "INSERT INTO orchestration_history (rid, seq, event_type, ts_ms, step, body) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&rid, &*next_seq, &e.type_name(), &ts, &step, &body],
        )
        .await?;
        *next_seq += 1;
    }
    Ok(())
}

pub(super) async fn load_history(c: &impl GenericClient, rid: i64) -> Result<Vec<Recorded>> {
    let rows = c
        .query(
            "SELECT seq, ts_ms, body FROM orchestration_history WHERE rid = $1 ORDER BY seq",
            &[&rid],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let body: String = r.get(2);
        out.push(Recorded {
            seq: r.get(0),
            ts_ms: r.get(1),
            event: serde_json::from_str(&body)?,
        });
    }
    Ok(out)
}

async fn clear_execution(c: &impl GenericClient, rid: i64) -> Result<()> {
    c.execute("DELETE FROM orchestration_history WHERE rid = $1", &[&rid])
        .await?;
    c.execute("DELETE FROM orchestration_timers WHERE rid = $1", &[&rid])
        .await?;
    Ok(())
}

/// Inserts activity tasks; one already scheduled by an earlier commit is
/// skipped (exactly once).
pub(super) async fn insert_tasks(tx: &Transaction<'_>, tasks: Vec<NewTask>) -> Result<Vec<(i64, NewTask)>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match insert_in(tx, &t).await {
            Ok(seq) => out.push((seq, t)),
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Sets the columns a journal append moves.
async fn advance(c: &impl GenericClient, rid: i64, next: i64, now_ms: i64, pending: bool) -> Result<()> {
    c.execute(
        "UPDATE orchestrations SET next_seq = $2, updated_ms = $3, pending = pending OR $4 WHERE rid = $1",
        &[&rid, &next, &now_ms, &pending],
    )
    .await?;
    Ok(())
}

impl PgStore {
    pub async fn orch_start(&self, o: NewOrchestration) -> Result<OrchRow> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        if let Some(row) = lock_row(&tx, "instance_id", &o.instance_id).await? {
            if !row.status.is_terminal() {
                return Err(StoreError::Duplicate(format!(
                    "An Orchestration instance with the status {} already exists.",
                    row.status.as_str()
                )));
            }
            clear_execution(&tx, row.rid).await?;
        }
        // A finished instance with this id is replaced: same rid, next
        // generation, fresh history.
        let rid: i64 = tx
            .query_one(
                "INSERT INTO orchestrations (instance_id, name, service, function, wasm_sha256, memory_mb, timeout_s,
                     version, status, input, created_ms, updated_ms, pending)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'Pending', $9, $10, $10, TRUE)
                 ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name, service = excluded.service,
                     function = excluded.function, wasm_sha256 = excluded.wasm_sha256,
                     memory_mb = excluded.memory_mb, timeout_s = excluded.timeout_s, version = excluded.version,
                     generation = orchestrations.generation + 1, status = 'Pending', input = excluded.input,
                     output = NULL, custom_status = NULL, created_ms = excluded.created_ms,
                     updated_ms = excluded.updated_ms, next_seq = 0, pending = TRUE
                 RETURNING rid",
                &[
                    &o.instance_id,
                    &o.name,
                    &o.service,
                    &o.function,
                    &o.wasm_sha256,
                    &(o.memory_mb as i32),
                    &(o.timeout_s as i32),
                    &o.version,
                    &o.input,
                    &o.now_ms,
                ],
            )
            .await?
            .get(0);
        let mut next = 0;
        let started = HistoryEvent::ExecutionStarted {
            name: o.name.clone(),
            input: o.input.clone(),
        };
        append(&tx, rid, &mut next, o.now_ms, &[started]).await?;
        tx.execute("UPDATE orchestrations SET next_seq = $2 WHERE rid = $1", &[&rid, &next])
            .await?;
        let row = read_row(&tx, "rid", &rid)
            .await?
            .ok_or_else(|| StoreError::Vanished("the instance vanished while it was being started".into()))?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn orch_get(&self, instance_id: &str) -> Result<Option<OrchRow>> {
        read_row(&**self.client().await?, "instance_id", &instance_id).await
    }

    pub async fn orch_load(&self, rid: i64) -> Result<Option<(OrchRow, Vec<Recorded>)>> {
        let mut client = self.client().await?;
        // One snapshot for the row and its history.
        let tx = tokio_postgres::Client::build_transaction(&mut client)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some(row) = read_row(&tx, "rid", &rid).await? else {
            return Ok(None);
        };
        let history = load_history(&tx, rid).await?;
        tx.commit().await?;
        Ok(Some((row, history)))
    }

    pub async fn orch_history(&self, rid: i64) -> Result<Vec<Recorded>> {
        load_history(&**self.client().await?, rid).await
    }

    pub async fn orch_mark_running(&self, rid: i64, now_ms: i64) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE orchestrations SET status = 'Running', updated_ms = $2 WHERE rid = $1 AND status = 'Pending'",
                &[&rid, &now_ms],
            )
            .await?;
        Ok(())
    }

    pub async fn orch_commit(&self, run: RunCommit) -> Result<Option<Committed>> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        let Some(row) = lock_row(&tx, "rid", &run.rid).await? else {
            return Ok(None);
        };
        if row.generation != run.generation || !matches!(row.status, RuntimeStatus::Running | RuntimeStatus::Pending) {
            return Ok(None);
        }
        if let Some(fence) = run.fence {
            let token: i64 = tx
                .query_one("SELECT lease_token FROM orchestrations WHERE rid = $1", &[&run.rid])
                .await?
                .get(0);
            if token != fence {
                tracing::info!(rid = run.rid, "refused a run's commit with a stale instance lease");
                return Ok(None);
            }
        }
        let mut next = row.next_seq;
        let arrived_meanwhile = row.next_seq > run.loaded_seq;
        append(&tx, run.rid, &mut next, run.now_ms, &run.events).await?;
        let custom = run.custom_status.or(row.custom_status);
        if let Some(input) = run.continue_as_new {
            clear_execution(&tx, run.rid).await?;
            let generation = row.generation + 1;
            let mut next = 0;
            let started = HistoryEvent::ExecutionStarted {
                name: row.name.clone(),
                input: Some(input.clone()),
            };
            append(&tx, run.rid, &mut next, run.now_ms, &[started]).await?;
            tx.execute(
                "UPDATE orchestrations SET generation = $2, status = 'Running', input = $3, output = NULL,
                     custom_status = $4, updated_ms = $5, next_seq = $6, pending = TRUE WHERE rid = $1",
                &[&run.rid, &(generation as i32), &input, &custom, &run.now_ms, &next],
            )
            .await?;
            tx.commit().await?;
            return Ok(Some(Committed {
                run_again: true,
                tasks: Vec::new(),
                generation,
            }));
        }
        let tasks = insert_tasks(&tx, run.tasks).await?;
        for (step, fire) in &run.timers {
            tx.execute(
                "INSERT INTO orchestration_timers (rid, generation, step, fire_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&run.rid, &(run.generation as i32), &i64::from(*step), fire],
            )
            .await?;
        }
        let (status, output, pending) = match &run.finished {
            Some((status, output)) => {
                tx.execute("DELETE FROM orchestration_timers WHERE rid = $1", &[&run.rid])
                    .await?;
                (*status, output.clone(), false)
            }
            None => (RuntimeStatus::Running, None, arrived_meanwhile),
        };
        tx.execute(
            "UPDATE orchestrations SET status = $2, output = $3, custom_status = $4, updated_ms = $5,
                 next_seq = $6, pending = $7 WHERE rid = $1",
            &[
                &run.rid,
                &status.as_str(),
                &output,
                &custom,
                &run.now_ms,
                &next,
                &pending,
            ],
        )
        .await?;
        tx.commit().await?;
        self.publish(tasks.iter().map(|(seq, t)| inserted_change(*seq, t)).collect());
        Ok(Some(Committed {
            run_again: pending,
            tasks,
            generation: run.generation,
        }))
    }

    pub async fn orch_deliver(
        &self,
        rid: i64,
        generation: u32,
        task_id: Option<String>,
        event: HistoryEvent,
        now_ms: i64,
    ) -> Result<Option<bool>> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        let Some(row) = lock_row(&tx, "rid", &rid).await? else {
            return Ok(None);
        };
        if row.generation != generation || row.status.is_terminal() {
            return Ok(None);
        }
        match &event {
            HistoryEvent::TimerFired { step, .. } => {
                // Deleting the timer is what fires it: once, cluster-wide.
                let removed = tx
                    .execute(
                        "DELETE FROM orchestration_timers WHERE rid = $1 AND generation = $2 AND step = $3",
                        &[&rid, &(generation as i32), &i64::from(*step)],
                    )
                    .await?;
                if removed == 0 {
                    return Ok(None);
                }
            }
            HistoryEvent::TaskCompleted { step, .. } | HistoryEvent::TaskFailed { step, .. } => {
                let last = tx
                    .query_opt(
                        "SELECT body FROM orchestration_history WHERE rid = $1 AND step = $2
                         ORDER BY seq DESC LIMIT 1",
                        &[&rid, &i64::from(*step)],
                    )
                    .await?
                    .map(|r| serde_json::from_str::<HistoryEvent>(r.get(0)))
                    .transpose()?;
                if !awaits_outcome(last.as_ref(), task_id.as_deref()) {
                    return Ok(None);
                }
            }
            _ => {}
        }
        let mut next = row.next_seq;
        append(&tx, rid, &mut next, now_ms, std::slice::from_ref(&event)).await?;
        advance(&tx, rid, next, now_ms, true).await?;
        tx.commit().await?;
        Ok(Some(row.status != RuntimeStatus::Suspended))
    }

    pub async fn orch_retry(
        &self,
        rid: i64,
        generation: u32,
        event: HistoryEvent,
        task: NewTask,
        now_ms: i64,
    ) -> Result<Option<(i64, NewTask)>> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        let Some(row) = lock_row(&tx, "rid", &rid).await? else {
            return Ok(None);
        };
        if row.generation != generation || row.status.is_terminal() {
            return Ok(None);
        }
        let mut next = row.next_seq;
        append(&tx, rid, &mut next, now_ms, std::slice::from_ref(&event)).await?;
        advance(&tx, rid, next, now_ms, false).await?;
        let inserted = insert_tasks(&tx, vec![task]).await?.pop();
        tx.commit().await?;
        if let Some((seq, t)) = &inserted {
            self.publish(vec![inserted_change(*seq, t)]);
        }
        Ok(inserted)
    }

    pub async fn orch_raise(
        &self,
        instance_id: &str,
        name: String,
        data: String,
        now_ms: i64,
    ) -> Result<ControlOutcome> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        let Some(row) = lock_row(&tx, "instance_id", &instance_id).await? else {
            return Ok(ControlOutcome::NotFound);
        };
        if row.status.is_terminal() {
            return Ok(ControlOutcome::Gone(row.status));
        }
        let mut next = row.next_seq;
        let raised = HistoryEvent::EventRaised { name, input: data };
        append(&tx, row.rid, &mut next, now_ms, &[raised]).await?;
        advance(&tx, row.rid, next, now_ms, true).await?;
        let row = read_row(&tx, "rid", &row.rid).await?.unwrap_or(row);
        tx.commit().await?;
        Ok(ControlOutcome::Done(Box::new(row), Vec::new()))
    }

    pub async fn orch_list(&self, f: OrchFilter) -> Result<Vec<OrchRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM orchestrations WHERE TRUE");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |sql: &mut String, text: &str, value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            sql.push_str(&text.replace('?', &format!("${}", args.len())));
        };
        if let Some(from) = f.created_from_ms {
            arg(&mut sql, " AND created_ms >= ?", Box::new(from));
        }
        if let Some(to) = f.created_to_ms {
            arg(&mut sql, " AND created_ms <= ?", Box::new(to));
        }
        if !f.statuses.is_empty() {
            let states: Vec<String> = f.statuses.iter().map(|s| s.as_str().to_string()).collect();
            arg(&mut sql, " AND status = ANY(?)", Box::new(states));
        }
        if let Some(prefix) = &f.id_prefix {
            arg(&mut sql, " AND starts_with(instance_id, ?)", Box::new(prefix.clone()));
        }
        if let Some((ms, id)) = &f.after {
            arg(&mut sql, " AND (created_ms, instance_id) > (?, ", Box::new(*ms));
            arg(&mut sql, "?)", Box::new(id.clone()));
        }
        arg(
            &mut sql,
            " ORDER BY created_ms, instance_id LIMIT ?",
            Box::new(f.limit as i64),
        );
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = self.client().await?.query(&sql, &params).await?;
        Ok(rows.iter().map(row_from).collect())
    }

    pub async fn orch_purge(&self, instance_id: Option<String>, f: OrchFilter) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = tokio_postgres::Client::transaction(&mut client).await?;
        let rids: Vec<i64> =
            match instance_id {
                Some(id) => read_row(&tx, "instance_id", &id)
                    .await?
                    .map(|r| r.rid)
                    .into_iter()
                    .collect(),
                None => {
                    let states: Vec<String> = f.statuses.iter().map(|s| s.as_str().to_string()).collect();
                    tx.query(
                    "SELECT rid FROM orchestrations WHERE created_ms >= $1 AND created_ms <= $2 AND status = ANY($3)",
                    &[&f.created_from_ms.unwrap_or(0), &f.created_to_ms.unwrap_or(i64::MAX), &states],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
                }
            };
        for rid in &rids {
            clear_execution(&tx, *rid).await?;
            tx.execute("DELETE FROM orchestrations WHERE rid = $1", &[rid]).await?;
        }
        tx.commit().await?;
        Ok(rids.len())
    }
}
