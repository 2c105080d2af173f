//! Put/Get/ListProvisionConfig.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Scope, page};
use crate::api::{ApiError, ApiResult, SharedState};
use crate::provision::config::{ProvisionConfig, response_doc};
use crate::registry::{ConfigTable, ListQuery};

/// The account part of `resource` (`<account>#<service>#<qualifier>#<function>`).
const ACCOUNT: &str = "local";

/// The config's qualifier; none means LATEST, which
/// `check_config_target(.., versioned_only = true)` refuses, as FC does:
/// provisioning needs a fixed version or an alias.
fn qualifier(scope: &Scope) -> String {
    scope
        .qualifier()
        .filter(|q| !q.is_empty())
        .unwrap_or("LATEST")
        .to_string()
}

pub(in crate::api) fn doc_for(
    app: &SharedState,
    service: &str,
    function: &str,
    qualifier: &str,
    stored: &Map<String, Value>,
) -> Map<String, Value> {
    let status = app
        .autoscaler
        .status(&(service.to_string(), function.to_string(), qualifier.to_string()));
    // `current` counts instances that are alive and initialised now, on
    // this node and (as of their heartbeats) on the others.
    let key = (service.to_string(), function.to_string(), qualifier.to_string());
    let current = app
        .registry
        .resolve(service, Some(qualifier), function)
        .map(|r| app.pool.provisioned(&r).0)
        .unwrap_or(0)
        + app.autoscaler.provisioned_elsewhere(&key);
    response_doc(ACCOUNT, service, qualifier, function, stored, current, &status.error)
}

pub async fn put(State(app): State<SharedState>, scope: Scope, body: Bytes) -> ApiResult<Response> {
    let body: Map<String, Value> =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body is not a JSON object: {e}")))?;
    let doc = put_config(&app, &scope.service, scope.function(), &qualifier(&scope), &body).await?;
    Ok(super::json(Value::Object(doc)))
}

/// PutProvisionConfig for every front end (the API and the console):
/// checks the target, parses the config, stores what FC stores and wakes
/// the autoscaler. Returns the config as GetProvisionConfig shows it.
pub(in crate::api) async fn put_config(
    app: &SharedState,
    service: &str,
    function: &str,
    qualifier: &str,
    body: &Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    app.registry.check_config_target(service, qualifier, function, true)?;
    let config = ProvisionConfig::parse(body).map_err(|e| ApiError::invalid(e.to_string()))?;
    let mut doc = Map::new();
    doc.insert("target".into(), json!(config.target));
    doc.insert("alwaysAllocateCPU".into(), json!(config.always_allocate_cpu));
    for key in ["scheduledActions", "targetTrackingPolicies"] {
        doc.insert(
            key.into(),
            body.get(key).cloned().filter(|v| !v.is_null()).unwrap_or(json!([])),
        );
    }
    let doc = app
        .registry
        .put_function_config(ConfigTable::Provision, service, function, qualifier, doc)
        .await?;
    app.autoscaler.nudge();
    Ok(doc_for(app, service, function, qualifier, &doc))
}

/// A function's provision configs by qualifier, as GetProvisionConfig
/// shows them (current and the autoscaler's error included).
pub(in crate::api) fn function_configs(
    app: &SharedState,
    service: &str,
    function: &str,
) -> Vec<(String, Map<String, Value>)> {
    app.registry
        .list_function_configs(ConfigTable::Provision, Some(service), Some(function), None)
        .into_iter()
        .map(|(s, f, q, doc)| {
            let shown = doc_for(app, &s, &f, &q, &doc);
            (q, shown)
        })
        .collect()
}

pub async fn get(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry
        .check_config_target(&scope.service, &q, scope.function(), true)?;
    // A function without a config has nothing provisioned: target 0.
    let stored = app
        .registry
        .get_function_config(ConfigTable::Provision, &scope.service, scope.function(), &q)
        .unwrap_or_default();
    Ok(super::json(Value::Object(doc_for(
        &app,
        &scope.service,
        scope.function(),
        &q,
        &stored,
    ))))
}

/// `GET /provision-configs?serviceName&qualifier&limit&nextToken`.
pub async fn list(State(app): State<SharedState>, query: super::QueryMap) -> ApiResult<Response> {
    let service = query.get("serviceName").filter(|s| !s.is_empty());
    let qualifier = query.get("qualifier").filter(|s| !s.is_empty());
    if qualifier.is_some() && service.is_none() {
        return Err(ApiError::invalid("qualifier needs serviceName"));
    }
    if let Some(s) = service {
        app.registry.service_exists(s)?;
    }
    let configs = app
        .registry
        .list_function_configs(ConfigTable::Provision, service, None, qualifier);
    let list = ListQuery {
        next_token: query.get("nextToken").map(str::to_string),
        limit: query.int("limit")?,
        ..Default::default()
    };
    let items = configs.into_iter().map(|(s, f, q, doc)| {
        let key = format!("{s}#{q}#{f}");
        (key, doc_for(&app, &s, &f, &q, &doc))
    });
    let (items, next) = list.page(items)?;
    Ok(page("provisionConfigs", items, next))
}
