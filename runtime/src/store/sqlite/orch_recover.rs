//! Orchestration recovery at startup: what the durable engine must pick up
//! again after a restart.

use super::super::{Result, TimerRow, Undelivered};
use super::SqliteStore;

impl SqliteStore {
    /// Startup: instances with work to do, armed timers, and finished
    /// activities whose results were never recorded.
    pub async fn orch_recover(&self) -> Result<(Vec<i64>, Vec<TimerRow>, Vec<Undelivered>)> {
        self.read(|c| {
            let pending: Vec<i64> = c
                .prepare(
                    "SELECT rid FROM orchestrations WHERE pending = 1 AND status IN ('Pending', 'Running', 'ContinuedAsNew')",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let timers: Vec<TimerRow> = c
                .prepare("SELECT fire_ms, rid, generation, step FROM orchestration_timers")?
                .query_map([], |r| {
                    Ok(TimerRow {
                        fire_ms: r.get(0)?,
                        rid: r.get(1)?,
                        generation: r.get::<_, i64>(2)? as u32,
                        step: r.get::<_, i64>(3)? as u32,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare(
                "SELECT h.rid, o.generation, h.step, json_extract(h.body, '$.TaskId'), t.status, t.result, t.error
                 FROM orchestration_history h
                 JOIN orchestrations o ON o.rid = h.rid
                 JOIN tasks t ON t.service = o.service AND t.function = json_extract(h.body, '$.Name')
                      AND t.invocation_id = json_extract(h.body, '$.TaskId')
                 WHERE o.status IN ('Pending', 'Running', 'Suspended', 'ContinuedAsNew')
                   AND h.event_type = 'TaskScheduled' AND t.end_ms > 0",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)? as u32,
                    r.get::<_, i64>(2)? as u32,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            let mut undelivered = Vec::new();
            for row in rows {
                let (rid, generation, step, task_id, status, result, error) = row?;
                let event = Undelivered::outcome(step, &status, result, error);
                undelivered.push(Undelivered {
                    rid,
                    generation,
                    task_id,
                    event,
                });
            }
            Ok((pending, timers, undelivered))
        })
        .await
    }
}
