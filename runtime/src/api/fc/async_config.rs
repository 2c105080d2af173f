//! Put/Get/Delete/ListFunctionAsyncInvokeConfig.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value};

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
    let fields = Fields::parse(&body)?;
    let doc = put_policy(&app, &scope.service, scope.function(), &q, &fields).await?;
    Ok(super::json(Value::Object(doc)))
}

/// Stores a function's async policy (PutFunctionAsyncInvokeConfig's
/// fields), keeping its creation time; the console's policy form too.
pub(in crate::api) async fn put_policy(
    app: &SharedState,
    service: &str,
    function: &str,
    q: &str,
    fields: &Fields,
) -> ApiResult<Map<String, Value>> {
    app.registry.check_config_target(service, q, function, false)?;
    let existing = app
        .registry
        .get_function_config(ConfigTable::AsyncInvoke, service, function, q);
    let created = existing
        .as_ref()
        .and_then(|d| d.get("createdTime"))
        .and_then(Value::as_str);
    let doc = config_doc(fields, service, function, q, created)?;
    Ok(app
        .registry
        .put_function_config(ConfigTable::AsyncInvoke, service, function, q, doc)
        .await?)
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
