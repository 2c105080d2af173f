//! Stateful async invocations (FC's task mode): Get, List, Stop, the
//! re-run and logs extensions, and ListStatefulAsyncInvocationFunctions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{QueryMap, Scope, json as json_response};
use crate::api::error::current_request_id;
use crate::api::{ApiError, ApiResult, SharedState};
use crate::registry::ConfigTable;
use crate::scheduler::{AsyncPolicy, SchedulerError, StopOutcome, Submission};
use crate::store::{TaskFilter, TaskRow};
use crate::tasks::{HistoryEvent, TaskState};

/// The FC `StatefulAsyncInvocation` object.
pub fn invocation_json(row: &TaskRow, include_payload: bool, events: Option<&[HistoryEvent]>) -> Value {
    let text = |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let mut o = Map::new();
    o.insert("serviceName".into(), json!(row.service));
    o.insert("functionName".into(), json!(row.function));
    o.insert("qualifier".into(), json!(row.qualifier));
    o.insert("invocationId".into(), json!(row.invocation_id));
    o.insert("status".into(), json!(row.status.as_str()));
    o.insert("startedTime".into(), json!(row.created_ms));
    o.insert("endTime".into(), json!(row.end_ms));
    o.insert("durationMs".into(), json!(row.duration_ms));
    if let Some(fuel) = row.fuel_consumed {
        // wasmfc's own field, with --fuel-metering.
        o.insert("fuelConsumed".into(), json!(fuel));
    }
    o.insert("requestId".into(), json!(row.request_id));
    o.insert("instanceId".into(), json!(row.instance_id));
    o.insert("invocationErrorMessage".into(), json!(row.error));
    o.insert("alreadyRetriedTimes".into(), json!(row.attempts));
    o.insert("destinationStatus".into(), json!(row.destination_status));
    o.insert("returnPayload".into(), json!(text(&row.result).unwrap_or_default()));
    if include_payload {
        o.insert(
            "invocationPayload".into(),
            json!(text(&row.payload).unwrap_or_default()),
        );
    }
    if let Some(events) = events {
        let list: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({
                    "eventId": e.event_id,
                    "status": e.event_type,
                    "timestamp": e.timestamp_ms,
                    "eventDetail": e.detail,
                })
            })
            .collect();
        o.insert("events".into(), Value::Array(list));
    }
    let mut ext = json!({ "kind": row.kind.as_str() });
    if row.next_run_ms > 0 && matches!(row.status, TaskState::Enqueued | TaskState::Retrying) {
        // When it may run next: a delayed task's due time, a retry's.
        ext["nextRunTime"] = json!(row.next_run_ms);
    }
    o.insert("wasmfc".into(), ext);
    Value::Object(o)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "StatefulAsyncInvocationNotFound",
        format!("stateful async invocation '{id}' does not exist"),
    )
}

/// Reads a stateful task (plain async ones are not visible here).
async fn load(app: &SharedState, scope: &Scope, with_payload: bool) -> ApiResult<TaskRow> {
    let id = scope.param("id");
    let row = app
        .scheduler
        .store()
        .get_task(&scope.service, scope.function(), id, with_payload)
        .await?
        .filter(|r| r.stateful)
        .filter(|r| scope.qualifier().is_none_or(|q| q == r.qualifier))
        .ok_or_else(|| not_found(id))?;
    Ok(row)
}

pub async fn get(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let row = load(&app, &scope, true).await?;
    let events = app.scheduler.store().task_events(row.seq).await?;
    Ok(json_response(invocation_json(&row, true, Some(&events))))
}

pub async fn list(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let q = &scope.query;
    let limit = q.int("limit")?.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and 100, got {limit}"
        )));
    }
    let filter = list_filter(&scope, limit as usize)?;
    let include_payload = filter.include_payload;
    let page = app.scheduler.store().list_tasks(filter).await?;
    let items: Vec<Value> = page
        .tasks
        .iter()
        .map(|r| invocation_json(r, include_payload, None))
        .collect();
    Ok(json_response(json!({
        "invocations": items,
        "nextToken": page.next.map(|(t, s)| format!("{t}.{s}")),
    })))
}

/// The filters of ListStatefulAsyncInvocations (status, id prefix, started
/// time range, qualifier, order, page token), shared with the bulk actions.
pub(in crate::api) fn list_filter(scope: &Scope, limit: usize) -> ApiResult<TaskFilter> {
    let q = &scope.query;
    let descending = match q.get("sortOrderByTime") {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("desc") => true,
        Some(v) if v.eq_ignore_ascii_case("asc") => false,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "sortOrderByTime must be asc or desc, got '{v}'"
            )));
        }
    };
    let status = q
        .get("status")
        .map(|s| TaskState::parse(s).ok_or_else(|| ApiError::invalid(format!("unknown status '{s}'"))))
        .transpose()?;
    let after = q.get("nextToken").map(parse_token).transpose()?;
    let include_payload = q.bool("includePayload")?.unwrap_or(false);
    Ok(TaskFilter {
        function: Some((scope.service.clone(), scope.function().to_string())),
        qualifier: scope.qualifier.clone(),
        id_prefix: q.get("invocationIdPrefix").map(str::to_string),
        statuses: status.into_iter().collect(),
        started_begin_ms: q.int("startedTimeBegin")?,
        started_end_ms: q.int("startedTimeEnd")?,
        descending,
        limit,
        after,
        include_payload,
    })
}

/// `nextToken` is `{startedTime}.{seq}` of the last item of the previous page.
fn parse_token(token: &str) -> ApiResult<(i64, i64)> {
    token
        .split_once('.')
        .and_then(|(t, s)| Some((t.parse().ok()?, s.parse().ok()?)))
        .ok_or_else(|| ApiError::invalid(format!("invalid nextToken '{token}'")))
}

pub async fn stop(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let row = load(&app, &scope, false).await?;
    let id = row.invocation_id.clone();
    match app.scheduler.stop(row).await? {
        StopOutcome::NotFound => Err(not_found(&id)),
        StopOutcome::AlreadyFinished(state) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "StatefulAsyncInvocationAlreadyCompleted",
            format!("invocation '{id}' already finished ({state})"),
        )),
        StopOutcome::Stopping(row) | StopOutcome::Stopped(row) => Ok(json_response(invocation_json(&row, false, None))),
    }
}

/// `POST .../stateful-async-invocations/{id}/rerun` (wasmfc extension): a
/// new task with the same payload (for an HTTP function's task, the
/// recorded request, replayed — FC cannot) and a new id.
pub async fn rerun(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let row = load(&app, &scope, true).await?;
    let new_id = scope.query.get("invocationId").map(str::to_string);
    let id = rerun_row(&app, &row, new_id).await?;
    let new_row = app
        .scheduler
        .store()
        .get_task(&row.service, &row.function, &id, true)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(json_response(invocation_json(&new_row, true, None)))
}

/// Submits a re-run of `row` (read with its payload) as a new task.
pub(in crate::api) async fn rerun_row(app: &SharedState, row: &TaskRow, new_id: Option<String>) -> ApiResult<String> {
    let (_, id) = app
        .scheduler
        .submit(Submission {
            service: row.service.clone(),
            function: row.function.clone(),
            qualifier: row.qualifier.clone(),
            invocation_id: new_id,
            stateful: true,
            kind: row.kind,
            payload: row.payload.clone().unwrap_or_default(),
            request_id: current_request_id(),
            detail: format!("re-run of {}", row.invocation_id),
            delay: std::time::Duration::ZERO,
        })
        .await
        .map_err(submit_error)?;
    Ok(id)
}

/// `GET .../stateful-async-invocations/{id}/logs` (wasmfc extension).
pub async fn logs(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let row = load(&app, &scope, false).await?;
    let logs = app.scheduler.store().task_logs(row.seq).await?.unwrap_or_default();
    Ok(json_response(json!({
        "invocationId": row.invocation_id,
        "status": row.status.as_str(),
        "logs": String::from_utf8_lossy(&logs),
    })))
}

/// Functions with task mode on: `{data: [{serviceName, qualifier, functionName}]}`.
pub async fn list_functions(State(app): State<SharedState>, query: QueryMap) -> ApiResult<Response> {
    let limit = query.int("limit")?.unwrap_or(100).clamp(1, 1000) as usize;
    let token = query.get("nextToken").unwrap_or("");
    let mut items: Vec<(String, Value)> = app
        .registry
        .list_function_configs(ConfigTable::AsyncInvoke, None, None, None)
        .into_iter()
        .filter(|(_, _, _, doc)| AsyncPolicy::from_doc(doc).stateful)
        .map(|(s, f, q, _)| {
            (
                format!("{s}/{f}/{q}"),
                json!({ "serviceName": s, "functionName": f, "qualifier": q }),
            )
        })
        .filter(|(k, _)| k.as_str() >= token)
        .collect();
    let next = items.get(limit).map(|(k, _)| k.clone());
    items.truncate(limit);
    Ok(json_response(json!({
        "data": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "nextToken": next,
    })))
}

pub fn submit_error(e: SchedulerError) -> ApiError {
    match e {
        SchedulerError::InvalidId(_) => ApiError::invalid(e.to_string()),
        SchedulerError::Duplicate(msg) => {
            ApiError::new(StatusCode::CONFLICT, "StatefulAsyncInvocationAlreadyExists", msg)
        }
        SchedulerError::Store(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_failed_commit_on_submit_is_a_server_error_and_a_taken_id_a_conflict() {
        let failed = submit_error(SchedulerError::Store(StoreError::CommitFailed("disk I/O error".into())));
        assert!(failed.status.is_server_error(), "{:?}", failed.status);
        let taken = submit_error(SchedulerError::Duplicate("invocation 'a' already exists".into()));
        assert_eq!(taken.status, StatusCode::CONFLICT);
    }
}
