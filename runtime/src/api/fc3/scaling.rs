//! FC 3.0 provision configs and reserved concurrency.
//!
//! Provision configs are 2.0's (the same autoscaler), with 3.0's
//! `defaultTarget` and `timeZone`s; a config is per version or alias, as in
//! 2.0. Reserved concurrency (`reservedConcurrency`) is per function and
//! enforced by the pool: an invocation beyond it waits for a running one to
//! finish as long as it may wait for an instance (a task, until one does),
//! then fails with FC's 429 `ResourceExhausted`; `0` stops the function
//! from running at all.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::tasks::configs_of;
use super::{Fc3Scope, page, with_arn};
use crate::api::fc::provision::{doc_for, put_config};
use crate::api::fc::{QueryMap, json as json_response, no_content};
use crate::api::{ApiError, ApiResult, SharedState};
use crate::registry::{ConfigTable, ListQuery};

/// A concurrency config's key: per function, never per qualifier.
const CONCURRENCY_QUALIFIER: &str = "LATEST";

fn provision_qualifier(scope: &Fc3Scope) -> String {
    scope.qualifier().unwrap_or("LATEST").to_string()
}

/// GetProvisionConfig's document with 3.0's fields.
fn provision_json(
    app: &SharedState,
    service: &str,
    function: &str,
    name: &str,
    qualifier: &str,
    stored: &Map<String, Value>,
) -> Map<String, Value> {
    let mut doc = doc_for(app, service, function, qualifier, stored);
    let target = doc.get("target").cloned().unwrap_or(json!(0));
    doc.insert("defaultTarget".into(), target);
    doc.insert("qualifier".into(), json!(qualifier));
    with_arn(doc, name)
}

pub async fn put_provision(State(app): State<SharedState>, scope: Fc3Scope, body: Bytes) -> ApiResult<Response> {
    let body: Map<String, Value> =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body is not a JSON object: {e}")))?;
    let q = provision_qualifier(&scope);
    put_config(&app, scope.service(), scope.function(), &q, &body).await?;
    let stored = app
        .registry
        .get_function_config(ConfigTable::Provision, scope.service(), scope.function(), &q)
        .unwrap_or_default();
    let doc = provision_json(&app, scope.service(), scope.function(), &scope.name, &q, &stored);
    Ok(json_response(Value::Object(doc)))
}

pub async fn get_provision(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let q = provision_qualifier(&scope);
    app.registry
        .check_config_target(scope.service(), &q, scope.function(), true)?;
    let stored = app
        .registry
        .get_function_config(ConfigTable::Provision, scope.service(), scope.function(), &q)
        .unwrap_or_default();
    let doc = provision_json(&app, scope.service(), scope.function(), &scope.name, &q, &stored);
    Ok(json_response(Value::Object(doc)))
}

/// DeleteProvisionConfig: the target drops to 0 and the autoscaler lets
/// the provisioned instances go.
pub async fn delete_provision(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let q = provision_qualifier(&scope);
    app.registry.get_function(scope.service(), None, scope.function())?;
    let deleted = app
        .registry
        .delete_function_config(ConfigTable::Provision, scope.service(), scope.function(), &q)
        .await?;
    if !deleted {
        return Err(ApiError::not_found(
            "ProvisionConfigNotFound",
            format!("function '{}' has no provision config for {q}", scope.name),
        ));
    }
    app.autoscaler.nudge();
    Ok(no_content())
}

/// ListProvisionConfigs (`functionName`, `limit`, `nextToken`).
pub async fn list_provision(State(app): State<SharedState>, query: QueryMap) -> ApiResult<Response> {
    let configs = configs_of(&app, ConfigTable::Provision, &query)?;
    let list = ListQuery {
        next_token: query.get("nextToken").map(str::to_string),
        limit: query.int("limit")?,
        ..Default::default()
    };
    let items = configs.into_iter().map(|(name, q, doc)| {
        let (service, function) = super::split_name(&name);
        let shown = provision_json(&app, service, function, &name, &q, &doc);
        (format!("{name}#{q}"), shown)
    });
    let (items, next) = list.page(items)?;
    Ok(page("provisionConfigs", items, next))
}

fn concurrency_json(name: &str, doc: &Map<String, Value>) -> Value {
    json!({
        "functionArn": super::function_arn(name),
        "reservedConcurrency": doc.get("reservedConcurrency").cloned().unwrap_or(Value::Null),
    })
}

/// PutConcurrencyConfig: `{reservedConcurrency}`, 0 or more.
pub async fn put_concurrency(State(app): State<SharedState>, scope: Fc3Scope, body: Bytes) -> ApiResult<Response> {
    let fields = crate::registry::Fields::parse(&body)?;
    let reserved = fields
        .int("reservedConcurrency", 0, 100_000)?
        .ok_or_else(|| ApiError::invalid("reservedConcurrency is required"))?;
    app.registry.get_function(scope.service(), None, scope.function())?;
    let mut doc = Map::new();
    doc.insert("reservedConcurrency".into(), json!(reserved));
    let doc = app
        .registry
        .put_function_config(
            ConfigTable::Concurrency,
            scope.service(),
            scope.function(),
            CONCURRENCY_QUALIFIER,
            doc,
        )
        .await?;
    app.pool
        .set_reserved_concurrency(scope.service(), scope.function(), Some(reserved as u64));
    Ok(json_response(concurrency_json(&scope.name, &doc)))
}

pub async fn get_concurrency(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    app.registry.get_function(scope.service(), None, scope.function())?;
    let doc = app
        .registry
        .get_function_config(
            ConfigTable::Concurrency,
            scope.service(),
            scope.function(),
            CONCURRENCY_QUALIFIER,
        )
        .ok_or_else(|| concurrency_not_found(&scope))?;
    Ok(json_response(concurrency_json(&scope.name, &doc)))
}

fn concurrency_not_found(scope: &Fc3Scope) -> ApiError {
    ApiError::not_found(
        "ConcurrencyConfigNotFound",
        format!("function '{}' has no concurrency config", scope.name),
    )
}

pub async fn delete_concurrency(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    app.registry.get_function(scope.service(), None, scope.function())?;
    let deleted = app
        .registry
        .delete_function_config(
            ConfigTable::Concurrency,
            scope.service(),
            scope.function(),
            CONCURRENCY_QUALIFIER,
        )
        .await?;
    if !deleted {
        return Err(concurrency_not_found(&scope));
    }
    app.pool
        .set_reserved_concurrency(scope.service(), scope.function(), None);
    Ok(no_content())
}

/// ListConcurrencyConfigs (`functionName`, `limit`, `nextToken`).
pub async fn list_concurrency(State(app): State<SharedState>, query: QueryMap) -> ApiResult<Response> {
    let configs = configs_of(&app, ConfigTable::Concurrency, &query)?;
    let list = ListQuery {
        next_token: query.get("nextToken").map(str::to_string),
        limit: query.int("limit")?,
        ..Default::default()
    };
    let items = configs.into_iter().map(|(name, _, doc)| {
        let shown = concurrency_json(&name, &doc);
        (name, shown.as_object().cloned().unwrap_or_default())
    });
    let (items, next) = list.page(items)?;
    Ok(page("configs", items, next))
}
