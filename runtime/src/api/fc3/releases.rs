//! FC 3.0 versions and aliases: per function, which are the versions and
//! aliases of the function's service (the same fields in both generations).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::Fc3Scope;
use crate::api::fc::versions;
use crate::api::{ApiResult, SharedState};

/// The function must exist: 2.0's routes only check its service.
fn check(app: &SharedState, scope: &Fc3Scope) -> ApiResult<()> {
    app.registry.get_function(scope.service(), None, scope.function())?;
    Ok(())
}

pub async fn publish(State(app): State<SharedState>, scope: Fc3Scope, body: Bytes) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::publish(State(app), scope.v2, body).await
}

pub async fn list_versions(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::list(State(app), scope.v2).await
}

pub async fn delete_version(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::delete(State(app), scope.v2).await
}

pub async fn create_alias(State(app): State<SharedState>, scope: Fc3Scope, body: Bytes) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::create_alias(State(app), scope.v2, body).await
}

pub async fn get_alias(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::get_alias(State(app), scope.v2).await
}

pub async fn update_alias(
    State(app): State<SharedState>,
    scope: Fc3Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::update_alias(State(app), scope.v2, headers, body).await
}

pub async fn delete_alias(State(app): State<SharedState>, scope: Fc3Scope, headers: HeaderMap) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::delete_alias(State(app), scope.v2, headers).await
}

pub async fn list_aliases(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    check(&app, &scope)?;
    versions::list_aliases(State(app), scope.v2).await
}
