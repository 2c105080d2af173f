//! Bulk actions by filter (wasmfc extension): stop, or re-run, every task
//! of a function that the list filters match —
//! `POST .../stateful-async-invocations:stop` and `...:rerun`, with the
//! query parameters of ListStatefulAsyncInvocations. `dryRun=true` only
//! counts what would be touched (the console's confirmation); `maxTasks`
//! (default 1,000, at most 10,000) bounds one call, and `truncated` says
//! when more matched.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::tasks::{list_filter, rerun_row};
use super::{Scope, json as json_response};
use crate::api::{ApiError, ApiResult, SharedState};
use crate::scheduler::StopOutcome;
use crate::store::{TaskFilter, TaskRow};

const PAGE: usize = 100;
const MAX_TASKS: i64 = 10_000;

/// What a bulk action touched: how many tasks, whether more matched than
/// it took, and a result per task (none on a dry run).
pub(in crate::api) struct BulkSummary {
    pub matched: usize,
    pub truncated: bool,
    pub results: Vec<Value>,
}

impl BulkSummary {
    fn render(self) -> Response {
        json_response(json!({ "matched": self.matched, "truncated": self.truncated, "results": self.results }))
    }
}

/// The bound on one call: `maxTasks`, 1 to [`MAX_TASKS`] (default 1,000).
pub(in crate::api) fn max_tasks(requested: Option<i64>) -> ApiResult<usize> {
    let max = requested.unwrap_or(1000);
    if !(1..=MAX_TASKS).contains(&max) {
        return Err(ApiError::invalid(format!(
            "maxTasks must be 1 to {MAX_TASKS}, got {max}"
        )));
    }
    Ok(max as usize)
}

/// The tasks the filter matches, at most `max` (and whether more matched).
async fn matching(app: &SharedState, mut filter: TaskFilter, max: usize) -> ApiResult<(Vec<TaskRow>, bool)> {
    filter.limit = PAGE;
    let mut rows = Vec::new();
    loop {
        let page = app.scheduler.store().list_tasks(filter.clone()).await?;
        rows.extend(page.tasks);
        match page.next {
            Some(next) if rows.len() < max => filter.after = Some(next),
            more => {
                let truncated = rows.len() > max || (rows.len() == max && more.is_some());
                rows.truncate(max);
                return Ok((rows, truncated));
            }
        }
    }
}

/// Stops every matching task that has not finished (`dry`: only counts
/// them); a result per task.
pub(in crate::api) async fn stop_matching(
    app: &SharedState,
    mut filter: TaskFilter,
    max: usize,
    dry: bool,
) -> ApiResult<BulkSummary> {
    filter.include_payload = false;
    let (rows, truncated) = matching(app, filter, max).await?;
    let open: Vec<TaskRow> = rows.into_iter().filter(|r| !r.status.is_terminal()).collect();
    if dry {
        return Ok(BulkSummary {
            matched: open.len(),
            truncated,
            results: Vec::new(),
        });
    }
    let mut results = Vec::with_capacity(open.len());
    for row in open {
        let id = row.invocation_id.clone();
        let result = match app.scheduler.stop(row).await {
            Ok(StopOutcome::Stopped(r) | StopOutcome::Stopping(r)) => json!({ "status": r.status.as_str() }),
            Ok(StopOutcome::AlreadyFinished(state)) => json!({ "status": state.as_str(), "note": "already finished" }),
            Ok(StopOutcome::NotFound) => json!({ "error": "it no longer exists" }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        results.push(json!({ "invocationId": id, "result": result }));
    }
    Ok(BulkSummary {
        matched: results.len(),
        truncated,
        results,
    })
}

/// Re-runs every matching task that has finished, each as a new task with
/// a new id (`dry`: only counts them).
pub(in crate::api) async fn rerun_matching(
    app: &SharedState,
    mut filter: TaskFilter,
    max: usize,
    dry: bool,
) -> ApiResult<BulkSummary> {
    filter.include_payload = !dry;
    let (rows, truncated) = matching(app, filter, max).await?;
    let done: Vec<TaskRow> = rows.into_iter().filter(|r| r.status.is_terminal()).collect();
    if dry {
        return Ok(BulkSummary {
            matched: done.len(),
            truncated,
            results: Vec::new(),
        });
    }
    let mut results = Vec::with_capacity(done.len());
    for row in &done {
        let result = match rerun_row(app, row, None).await {
            Ok(id) => json!({ "newInvocationId": id }),
            Err(e) => json!({ "error": e.message }),
        };
        results.push(json!({ "invocationId": row.invocation_id, "result": result }));
    }
    Ok(BulkSummary {
        matched: results.len(),
        truncated,
        results,
    })
}

fn dry_run(scope: &Scope) -> ApiResult<bool> {
    Ok(scope.query.bool("dryRun")?.unwrap_or(false))
}

/// `POST .../stateful-async-invocations:stop`.
pub async fn stop(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let max = max_tasks(scope.query.int("maxTasks")?)?;
    let filter = list_filter(&scope, PAGE)?;
    Ok(stop_matching(&app, filter, max, dry_run(&scope)?).await?.render())
}

/// `POST .../stateful-async-invocations:rerun`.
pub async fn rerun(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let max = max_tasks(scope.query.int("maxTasks")?)?;
    let filter = list_filter(&scope, PAGE)?;
    Ok(rerun_matching(&app, filter, max, dry_run(&scope)?).await?.render())
}
