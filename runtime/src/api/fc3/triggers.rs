//! FC 3.0 triggers (HTTP only, as in 2.0) and ListInstances.
//!
//! A 3.0 trigger shows `triggerConfig` as a JSON string, as the SDK's model
//! types it, and its URL in `httpTrigger.urlInternet`. FC 3.0's URLs are a
//! host per function (`https://<name>-<id>.<region>.fcapp.run`); a
//! self-hosted server on one address serves the trigger under FC's path
//! form instead, the same URL 2.0 clients call.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Fc3Scope, page};
use crate::api::fc::{PROXY_PREFIX, if_match, json as json_response, no_content, object};
use crate::api::{ApiError, ApiResult, AppState, SharedState};
use crate::registry::Fields;

fn trigger_json(app: &AppState, scope: &Fc3Scope, mut doc: Map<String, Value>) -> Map<String, Value> {
    if let Some(config) = doc.get("triggerConfig").filter(|c| c.is_object()) {
        let text = config.to_string();
        doc.insert("triggerConfig".into(), json!(text));
    }
    let qualifier = doc.get("qualifier").and_then(Value::as_str).unwrap_or("LATEST");
    let segment = match qualifier {
        "LATEST" => scope.service().to_string(),
        q => format!("{}.{q}", scope.service()),
    };
    let url = format!("{}{PROXY_PREFIX}{segment}/{}/", app.public_url, scope.function());
    doc.insert("httpTrigger".into(), json!({ "urlInternet": url, "urlIntranet": url }));
    doc.insert("targetArn".into(), json!(scope.arn()));
    doc.insert("status".into(), json!("Ready"));
    doc
}

pub async fn create(State(app): State<SharedState>, scope: Fc3Scope, body: Bytes) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    let doc = app
        .registry
        .create_trigger(scope.service(), scope.function(), &fields)
        .await?;
    Ok(object(trigger_json(&app, &scope, doc)))
}

pub async fn get(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let doc = app
        .registry
        .get_trigger(scope.service(), scope.function(), scope.v2.param("trigger"))?;
    Ok(object(trigger_json(&app, &scope, doc)))
}

pub async fn update(
    State(app): State<SharedState>,
    scope: Fc3Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    let doc = app
        .registry
        .update_trigger(
            scope.service(),
            scope.function(),
            scope.v2.param("trigger"),
            &fields,
            if_match(&headers)?,
        )
        .await?;
    Ok(object(trigger_json(&app, &scope, doc)))
}

pub async fn delete(State(app): State<SharedState>, scope: Fc3Scope, headers: HeaderMap) -> ApiResult<Response> {
    app.registry
        .delete_trigger(
            scope.service(),
            scope.function(),
            scope.v2.param("trigger"),
            if_match(&headers)?,
        )
        .await?;
    Ok(no_content())
}

pub async fn list(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    app.registry.get_function(scope.service(), None, scope.function())?;
    let (items, next) = app
        .registry
        .list_triggers(scope.service(), scope.function(), &scope.query().list_query()?)?;
    let items = items.into_iter().map(|d| trigger_json(&app, &scope, d)).collect();
    Ok(page("triggers", items, next))
}

/// ListInstances: `{instances: [InstanceInfo], requestId}`, the pool's live
/// instances of the function (of one version with `qualifier`).
pub async fn instances(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let qualifier = scope.qualifier();
    let resolved = app
        .registry
        .resolve_main(scope.service(), qualifier, scope.function())?;
    let limit = scope.query().int("limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to 1000, got {limit}")));
    }
    let instances: Vec<Value> = app
        .pool
        .instances(scope.service(), scope.function())
        .iter()
        .filter(|i| qualifier.is_none() || i.version == resolved.version)
        .take(limit as usize)
        .map(|i| {
            let version = i.version.map_or_else(|| "LATEST".to_string(), |v| v.to_string());
            json!({
                "instanceId": i.instance_id,
                "versionId": version,
                "qualifier": qualifier.unwrap_or(&version),
                "status": "Running",
                "createdTimeMs": i.created_ms,
                "resourceType": if i.provisioned { "Provisioned" } else { "OnDemand" },
                "wasmfc": { "busy": i.busy, "current": i.current, "invocations": i.invocations },
            })
        })
        .collect();
    Ok(json_response(json!({
        "instances": instances,
        "requestId": crate::api::error::current_request_id(),
    })))
}
