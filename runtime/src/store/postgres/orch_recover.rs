//! Orchestration recovery at a node's start on PostgreSQL: what the
//! durable engine must pick up again (see the embedded store's twin).

use super::super::{Result, TimerRow, Undelivered};
use super::PgStore;
use super::orch_leases::timer_from;

impl PgStore {
    /// Instances with work to do, armed timers, and finished activities
    /// whose results were never recorded.
    pub async fn orch_recover(&self) -> Result<(Vec<i64>, Vec<TimerRow>, Vec<Undelivered>)> {
        let client = self.client().await?;
        let pending: Vec<i64> = client
            .query(
                "SELECT rid FROM orchestrations WHERE pending AND status IN ('Pending', 'Running', 'ContinuedAsNew')",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let timers = client
            .query("SELECT fire_ms, rid, generation, step FROM orchestration_timers", &[])
            .await?
            .iter()
            .map(timer_from)
            .collect();
        let rows = client
            .query(
                "SELECT h.rid, o.generation, h.step, h.body::json->>'TaskId', t.status, t.result, t.error
                 FROM orchestration_history h
                 JOIN orchestrations o ON o.rid = h.rid
                 JOIN tasks t ON t.service = o.service AND t.function = h.body::json->>'Name'
                      AND t.invocation_id = h.body::json->>'TaskId'
                 WHERE o.status IN ('Pending', 'Running', 'Suspended', 'ContinuedAsNew')
                   AND h.event_type = 'TaskScheduled' AND t.end_ms > 0",
                &[],
            )
            .await?;
        let mut undelivered = Vec::with_capacity(rows.len());
        for r in rows {
            let step = r.get::<_, i64>(2).max(0) as u32;
            let status: String = r.get(4);
            let error: String = r.get(6);
            let event = Undelivered::outcome(step, &status, r.get(5), error);
            undelivered.push(Undelivered {
                rid: r.get(0),
                generation: r.get::<_, i32>(1).max(0) as u32,
                task_id: r.get(3),
                event,
            });
        }
        Ok((pending, timers, undelivered))
    }
}
