//! FC 3.0 functions: Create/Get/Update/Delete/List and the code.
//!
//! The body is FC 2.0's with the service's settings folded in; the answer
//! is the 2.0 document with the 3.0 name, `functionArn`, `state` and, for
//! a function with its own service, that service's settings.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Fc3Scope, fc3_name, function_arn, page};
use crate::api::fc::{self, QueryMap, if_match, no_content, object};
use crate::api::{ApiResult, AppState, SharedState};
use crate::registry::{Fields, ListQuery};

/// Settings FC 2.0 keeps on the service and FC 3.0 on the function.
const SERVICE_SETTINGS: &[&str] = &[
    "role",
    "logConfig",
    "vpcConfig",
    "nasConfig",
    "ossMountConfig",
    "tracingConfig",
    "internetAccess",
];

/// A 2.0 function document as FC 3.0's `Function`.
pub(super) fn function_json(app: &AppState, service: &str, mut doc: Map<String, Value>) -> Map<String, Value> {
    let function = doc
        .get("functionName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = fc3_name(service, &function);
    if let Some(service_doc) = app.registry.service_doc(service) {
        for key in SERVICE_SETTINGS {
            if let Some(v) = service_doc.get(*key) {
                doc.entry(*key).or_insert_with(|| v.clone());
            }
        }
    }
    let initializer = doc.get("initializer").and_then(Value::as_str).unwrap_or("");
    if !initializer.is_empty() && !doc.contains_key("instanceLifecycleConfig") {
        let timeout = doc.get("initializationTimeout").cloned().unwrap_or(json!(3));
        doc.insert(
            "instanceLifecycleConfig".into(),
            json!({ "initializer": { "handler": initializer, "timeout": timeout } }),
        );
    }
    doc.insert("functionName".into(), json!(name));
    doc.insert("functionArn".into(), json!(function_arn(&name)));
    doc.insert("state".into(), json!("Active"));
    doc.insert("lastUpdateStatus".into(), json!("Successful"));
    doc
}

/// A 3.0 CreateFunction/UpdateFunction body in 2.0 terms: the
/// initializer of `instanceLifecycleConfig` becomes `initializer` and
/// `initializationTimeout`.
fn v2_fields(body: &Bytes) -> ApiResult<Fields> {
    let mut fields = Fields::parse(body)?;
    let init = fields
        .value("instanceLifecycleConfig")
        .and_then(|c| c.get("initializer"))
        .filter(|i| !i.is_null())
        .cloned();
    if let Some(init) = init {
        if let Some(handler) = init.get("handler").filter(|h| !h.is_null()) {
            fields.set("initializer", handler.clone());
        }
        if let Some(timeout) = init.get("timeout").filter(|t| !t.is_null()) {
            fields.set("initializationTimeout", timeout.clone());
        }
    }
    Ok(fields)
}

pub async fn create(State(app): State<SharedState>, body: Bytes) -> ApiResult<Response> {
    let fields = v2_fields(&body)?;
    let doc = app.registry.create_function_with_service(&fields).await?;
    let name = doc
        .get("functionName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(object(function_json(&app, &name, doc)))
}

pub async fn get(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let entry = app
        .registry
        .get_function(scope.service(), scope.qualifier(), scope.function())?;
    Ok(object(function_json(&app, scope.service(), entry.doc.clone())))
}

pub async fn update(
    State(app): State<SharedState>,
    scope: Fc3Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = v2_fields(&body)?;
    let doc = app
        .registry
        .update_function(scope.service(), scope.function(), &fields, if_match(&headers)?)
        .await?;
    // A function with its own service keeps 3.0's service-level settings
    // there (what 2.0 clients see too).
    let mut service_settings = serde_json::Map::new();
    for key in SERVICE_SETTINGS {
        if let Some(v) = fields.value(key) {
            service_settings.insert((*key).to_string(), v.clone());
        }
    }
    if scope.service() == scope.function() && !service_settings.is_empty() {
        app.registry
            .update_service(scope.service(), &Fields::from_map(service_settings), None)
            .await?;
    }
    Ok(object(function_json(&app, scope.service(), doc)))
}

pub async fn delete(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    app.registry
        .delete_function_with_service(scope.service(), scope.function())
        .await?;
    Ok(no_content())
}

/// ListFunctions: every function of the registry under its 3.0 name, in
/// name order, with `prefix`, `limit` and `nextToken`.
pub async fn list(State(app): State<SharedState>, query: QueryMap) -> ApiResult<Response> {
    let list = ListQuery {
        prefix: query.get("prefix").map(str::to_string),
        next_token: query.get("nextToken").map(str::to_string),
        limit: query.int("limit")?,
        ..Default::default()
    };
    let mut all: Vec<(String, Map<String, Value>)> = app
        .registry
        .all_functions()
        .into_iter()
        .map(|(service, doc)| {
            let doc = function_json(&app, &service, doc);
            let name = doc
                .get("functionName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (name, doc)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next) = list.page(all.into_iter())?;
    Ok(page("functions", items, next))
}

/// GetFunctionCode: `{url, checksum}`, as in 2.0.
pub async fn get_code(state: State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    fc::functions::get_code(state, scope.v2).await
}

/// The raw `application/wasm` upload (wasmfc's extension, as in 2.0): a
/// new function gets its own service.
pub async fn put_code(
    State(app): State<SharedState>,
    scope: Fc3Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let own = scope.service() == scope.function();
    if own && app.registry.service_exists(scope.service()).is_err() {
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/wasm") {
            return fc::functions::put_code(State(app), scope.v2, headers, body).await;
        }
        use base64::Engine as _;
        let fields = Fields::from_map(
            json!({
                "functionName": scope.function(),
                "runtime": "wasm",
                "code": { "zipFile": base64::engine::general_purpose::STANDARD.encode(&body) },
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        let doc = app.registry.create_function_with_service(&fields).await?;
        return Ok(object(function_json(&app, scope.service(), doc)));
    }
    fc::functions::put_code(State(app.clone()), scope.v2.clone(), headers, body).await?;
    let entry = app.registry.get_function(scope.service(), None, scope.function())?;
    Ok(object(function_json(&app, scope.service(), entry.doc.clone())))
}
