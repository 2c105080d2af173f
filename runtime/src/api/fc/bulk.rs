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
use crate::store::TaskRow;

const PAGE: usize = 100;
const MAX_TASKS: i64 = 10_000;

/// The tasks the filter matches, at most `max` (and whether more matched).
async fn matching(app: &SharedState, scope: &Scope, with_payload: bool) -> ApiResult<(Vec<TaskRow>, bool)> {
    let max = scope.query.int("maxTasks")?.unwrap_or(1000);
    if !(1..=MAX_TASKS).contains(&max) {
        return Err(ApiError::invalid(format!(
            "maxTasks must be 1 to {MAX_TASKS}, got {max}"
        )));
    }
    let max = max as usize;
    let mut filter = list_filter(scope, PAGE)?;
    filter.include_payload = with_payload;
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

fn summary(matched: usize, truncated: bool, results: Vec<Value>) -> Response {
    json_response(json!({ "matched": matched, "truncated": truncated, "results": results }))
}

fn dry_run(scope: &Scope) -> ApiResult<bool> {
    Ok(scope.query.bool("dryRun")?.unwrap_or(false))
}

/// `POST .../stateful-async-invocations:stop`: stops every matching task
/// that has not finished; a result per task.
pub async fn stop(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let (rows, truncated) = matching(&app, &scope, false).await?;
    let open: Vec<TaskRow> = rows.into_iter().filter(|r| !r.status.is_terminal()).collect();
    if dry_run(&scope)? {
        return Ok(summary(open.len(), truncated, Vec::new()));
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
    Ok(summary(results.len(), truncated, results))
}

/// `POST .../stateful-async-invocations:rerun`: re-runs every matching task
/// that has finished, each as a new task with a new id.
pub async fn rerun(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let dry = dry_run(&scope)?;
    let (rows, truncated) = matching(&app, &scope, !dry).await?;
    let done: Vec<TaskRow> = rows.into_iter().filter(|r| r.status.is_terminal()).collect();
    if dry {
        return Ok(summary(done.len(), truncated, Vec::new()));
    }
    let mut results = Vec::with_capacity(done.len());
    for row in &done {
        let result = match rerun_row(&app, row, None).await {
            Ok(id) => json!({ "newInvocationId": id }),
            Err(e) => json!({ "error": e.message }),
        };
        results.push(json!({ "invocationId": row.invocation_id, "result": result }));
    }
    Ok(summary(results.len(), truncated, results))
}
