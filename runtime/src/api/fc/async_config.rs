//! Put/Get/Delete/ListFunctionAsyncInvokeConfig.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::Value;

use super::{Scope, no_content, page};
use crate::api::{ApiError, ApiResult, SharedState};
use crate::registry::{ConfigTable, Fields, ListQuery};
use crate::scheduler::policy::config_doc;

/// The config's qualifier: `aliyun-fc2` always sends one; the 2021 SDK may
/// omit it, meaning LATEST.
fn qualifier(scope: &Scope) -> String {
    scope.qualifier().unwrap_or("LATEST").to_string()
}

fn not_found(scope: &Scope, q: &str) -> ApiError {
    ApiError::not_found(
        "AsyncConfigNotExists",
        format!("no async invoke config for {}.{q}/{}", scope.service, scope.function()),
    )
}

pub async fn put(State(app): State<SharedState>, scope: Scope, body: Bytes) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry
        .check_config_target(&scope.service, &q, scope.function(), false)?;
    let fields = Fields::parse(&body)?;
    let existing = app
        .registry
        .get_function_config(ConfigTable::AsyncInvoke, &scope.service, scope.function(), &q);
    let created = existing
        .as_ref()
        .and_then(|d| d.get("createdTime"))
        .and_then(Value::as_str);
    let doc = config_doc(&fields, &scope.service, scope.function(), &q, created)?;
    let doc = app
        .registry
        .put_function_config(ConfigTable::AsyncInvoke, &scope.service, scope.function(), &q, doc)
        .await?;
    Ok(super::json(Value::Object(doc)))
}

pub async fn get(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry.service_exists(&scope.service)?;
    app.registry
        .get_function_config(ConfigTable::AsyncInvoke, &scope.service, scope.function(), &q)
        .map(|doc| super::json(Value::Object(doc)))
        .ok_or_else(|| not_found(&scope, &q))
}

pub async fn delete(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry.service_exists(&scope.service)?;
    if app
        .registry
        .delete_function_config(ConfigTable::AsyncInvoke, &scope.service, scope.function(), &q)
        .await?
    {
        Ok(no_content())
    } else {
        Err(not_found(&scope, &q))
    }
}

pub async fn list(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    app.registry.get_function(&scope.service, None, scope.function())?;
    let configs = app.registry.list_function_configs(
        ConfigTable::AsyncInvoke,
        Some(&scope.service),
        Some(scope.function()),
        None,
    );
    let query = ListQuery {
        next_token: scope.query.get("nextToken").map(str::to_string),
        limit: scope.query.int("limit")?,
        ..Default::default()
    };
    let (items, next) = query.page(configs.into_iter().map(|(_, _, q, doc)| (q, doc)))?;
    Ok(page("configs", items, next))
}
