//! FC 3.0 async tasks and async invoke configs: 2.0's task mode under 3.0's
//! names (`asyncTask` for `statefulInvocation`, `taskId` for
//! `invocationId`, ...). A task is one row whatever API submitted it, so a
//! task started through either generation is listed and stopped through
//! both.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Fc3Scope, fc3_name, function_arn, page, split_name, with_arn};
use crate::api::fc::async_config::put_policy;
use crate::api::fc::tasks::{invocation_json, list_filter};
use crate::api::fc::{QueryMap, json as json_response, no_content};
use crate::api::{ApiError, ApiResult, SharedState};
use crate::registry::{ConfigTable, Fields, ListQuery};
use crate::scheduler::StopOutcome;
use crate::store::TaskRow;
use crate::tasks::HistoryEvent;

/// 2.0 field names of a task and their 3.0 names.
const TASK_FIELDS: &[(&str, &str)] = &[
    ("invocationId", "taskId"),
    ("invocationPayload", "taskPayload"),
    ("invocationErrorMessage", "taskErrorMessage"),
];

/// FC 3.0's `AsyncTask`.
fn task_json(row: &TaskRow, include_payload: bool, events: Option<&[HistoryEvent]>) -> Value {
    let Value::Object(mut o) = invocation_json(row, include_payload, events) else {
        return Value::Null;
    };
    for (from, to) in TASK_FIELDS {
        if let Some(v) = o.remove(*from) {
            o.insert((*to).into(), v);
        }
    }
    o.remove("serviceName");
    o.remove("functionName");
    o.insert(
        "functionArn".into(),
        json!(function_arn(&fc3_name(&row.service, &row.function))),
    );
    Value::Object(o)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("AsyncTaskNotFound", format!("async task '{id}' does not exist"))
}

async fn load(app: &SharedState, scope: &Fc3Scope, with_payload: bool) -> ApiResult<TaskRow> {
    let id = scope.v2.param("id");
    app.registry.get_function(scope.service(), None, scope.function())?;
    app.scheduler
        .store()
        .get_task(scope.service(), scope.function(), id, with_payload)
        .await?
        .filter(|r| r.stateful)
        .filter(|r| scope.qualifier().is_none_or(|q| q == r.qualifier))
        .ok_or_else(|| not_found(id))
}

pub async fn get(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let row = load(&app, &scope, true).await?;
    let events = app.scheduler.store().task_events(row.seq).await?;
    Ok(json_response(task_json(&row, true, Some(&events))))
}

/// ListAsyncTasks: 2.0's filters, with `prefix` for the id prefix.
pub async fn list(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    app.registry.get_function(scope.service(), None, scope.function())?;
    let limit = scope.query().int("limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and 100, got {limit}"
        )));
    }
    let v2 = scope.with_query_renamed(&[("prefix", "invocationIdPrefix")]);
    let filter = list_filter(&v2, limit as usize)?;
    let include_payload = filter.include_payload;
    let page = app.scheduler.store().list_tasks(filter).await?;
    let tasks: Vec<Value> = page.tasks.iter().map(|r| task_json(r, include_payload, None)).collect();
    Ok(json_response(json!({
        "tasks": tasks,
        "nextToken": page.next.map(|(t, s)| format!("{t}.{s}")),
    })))
}

pub async fn stop(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let row = load(&app, &scope, false).await?;
    let id = row.invocation_id.clone();
    match app.scheduler.stop(row).await? {
        StopOutcome::NotFound => Err(not_found(&id)),
        StopOutcome::AlreadyFinished(state) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "AsyncTaskAlreadyCompleted",
            format!("async task '{id}' already finished ({state})"),
        )),
        StopOutcome::Stopping(row) | StopOutcome::Stopped(row) => Ok(json_response(task_json(&row, false, None))),
    }
}

// ---- async invoke configs ----------------------------------------------

fn qualifier(scope: &Fc3Scope) -> String {
    scope.qualifier().unwrap_or("LATEST").to_string()
}

/// A 3.0 destination (`acs:fc:<r>:<a>:functions/<name>[:<qualifier>]`) in
/// the 2.0 form the policy reads; other ARNs as they are.
fn v2_destination(arn: &str) -> String {
    let Some((head, rest)) = arn.split_once(":functions/") else {
        return arn.to_string();
    };
    if head.contains("services/") || !head.starts_with("acs:fc:") {
        return arn.to_string();
    }
    let (name, qualifier) = rest.split_once(':').unwrap_or((rest, "LATEST"));
    let (service, function) = split_name(name);
    format!("{head}:services/{service}.{qualifier}/functions/{function}")
}

/// A 2.0 destination ARN in 3.0's form.
fn v3_destination(arn: &str) -> String {
    let Some((head, rest)) = arn.split_once(":services/") else {
        return arn.to_string();
    };
    let Some((segment, function)) = rest.split_once("/functions/") else {
        return arn.to_string();
    };
    let (service, qualifier) = segment.split_once('.').unwrap_or((segment, "LATEST"));
    let name = fc3_name(service, function);
    match qualifier {
        "LATEST" => format!("{head}:functions/{name}"),
        q => format!("{head}:functions/{name}:{q}"),
    }
}

fn map_destinations(config: &mut Map<String, Value>, map: fn(&str) -> String) {
    let Some(Value::Object(dest)) = config.get_mut("destinationConfig") else {
        return;
    };
    for which in ["onSuccess", "onFailure"] {
        if let Some(Value::Object(d)) = dest.get_mut(which)
            && let Some(arn) = d.get("destination").and_then(Value::as_str).map(map)
        {
            d.insert("destination".into(), json!(arn));
        }
    }
}

/// A stored 2.0 config as FC 3.0's `AsyncConfig`.
fn config_json(mut doc: Map<String, Value>, name: &str) -> Map<String, Value> {
    if let Some(v) = doc.remove("statefulInvocation") {
        doc.insert("asyncTask".into(), v);
    }
    doc.remove("service");
    doc.remove("function");
    map_destinations(&mut doc, v3_destination);
    with_arn(doc, name)
}

fn config_not_found(scope: &Fc3Scope, q: &str) -> ApiError {
    ApiError::not_found(
        "AsyncConfigNotExists",
        format!("no async invoke config for function '{}' ({q})", scope.name),
    )
}

pub async fn put_config(State(app): State<SharedState>, scope: Fc3Scope, body: Bytes) -> ApiResult<Response> {
    let mut fields = Fields::parse(&body)?;
    if fields.value("asyncTask").is_some_and(|v| !v.is_boolean()) {
        return Err(ApiError::invalid("asyncTask must be true or false"));
    }
    fields.rename("asyncTask", "statefulInvocation");
    if let Some(dest) = fields.value("destinationConfig").cloned() {
        let mut holder = Map::new();
        holder.insert("destinationConfig".into(), dest);
        map_destinations(&mut holder, v2_destination);
        fields.set(
            "destinationConfig",
            holder.remove("destinationConfig").unwrap_or(Value::Null),
        );
    }
    let q = qualifier(&scope);
    let doc = put_policy(&app, scope.service(), scope.function(), &q, &fields).await?;
    Ok(json_response(Value::Object(config_json(doc, &scope.name))))
}

pub async fn get_config(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry.get_function(scope.service(), None, scope.function())?;
    app.registry
        .get_function_config(ConfigTable::AsyncInvoke, scope.service(), scope.function(), &q)
        .map(|doc| json_response(Value::Object(config_json(doc, &scope.name))))
        .ok_or_else(|| config_not_found(&scope, &q))
}

pub async fn delete_config(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry.get_function(scope.service(), None, scope.function())?;
    if app
        .registry
        .delete_function_config(ConfigTable::AsyncInvoke, scope.service(), scope.function(), &q)
        .await?
    {
        Ok(no_content())
    } else {
        Err(config_not_found(&scope, &q))
    }
}

/// ListAsyncInvokeConfigs: every function's, or one's (`functionName`).
pub async fn list_configs(State(app): State<SharedState>, query: QueryMap) -> ApiResult<Response> {
    let configs = configs_of(&app, ConfigTable::AsyncInvoke, &query)?;
    let list = ListQuery {
        next_token: query.get("nextToken").map(str::to_string),
        limit: query.int("limit")?,
        ..Default::default()
    };
    let items = configs.into_iter().map(|(name, q, doc)| {
        let mut shown = config_json(doc, &name);
        shown.insert("qualifier".into(), json!(q));
        (format!("{name}#{q}"), shown)
    });
    let (items, next) = list.page(items)?;
    Ok(page("configs", items, next))
}

/// A config under its function's 3.0 name: (name, qualifier, doc).
pub(super) type NamedConfig = (String, String, Map<String, Value>);

/// The configs of `table` as (3.0 name, qualifier, doc), in name order;
/// only the function `functionName` names when given (404 if unknown).
pub(super) fn configs_of(app: &SharedState, table: ConfigTable, query: &QueryMap) -> ApiResult<Vec<NamedConfig>> {
    let only = query.get("functionName").map(split_name);
    if let Some((s, f)) = only {
        app.registry.get_function(s, None, f)?;
    }
    let mut configs: Vec<_> = app
        .registry
        .list_function_configs(table, only.map(|o| o.0), only.map(|o| o.1), None)
        .into_iter()
        .map(|(s, f, q, doc)| (fc3_name(&s, &f), q, doc))
        .collect();
    configs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_translate_between_the_generations() {
        let v3 = "acs:fc:cn-hangzhou:123:functions/done:prod";
        let v2 = v2_destination(v3);
        assert_eq!(v2, "acs:fc:cn-hangzhou:123:services/done.prod/functions/done");
        assert_eq!(v3_destination(&v2), v3);
        assert_eq!(
            v2_destination("acs:fc:::functions/svc$fn"),
            "acs:fc:::services/svc.LATEST/functions/fn"
        );
        assert_eq!(
            v3_destination("acs:fc:::services/svc.LATEST/functions/fn"),
            "acs:fc:::functions/svc$fn"
        );
        assert_eq!(v2_destination("acs:mns:::queues/q"), "acs:mns:::queues/q");
    }
}
