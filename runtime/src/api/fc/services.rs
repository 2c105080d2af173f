//! Services: Create/Get/Update/Delete/List, and GetAccountSettings.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::{QueryMap, Scope, if_match, no_content, object, page};
use crate::api::{ApiResult, SharedState};
use crate::registry::Fields;

pub async fn account_settings() -> Response {
    super::json(json!({ "availableAZs": ["local"] }))
}

pub async fn create(State(app): State<SharedState>, body: Bytes) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    Ok(object(app.registry.create_service(&fields).await?))
}

pub async fn get(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    Ok(object(app.registry.get_service(&scope.service, scope.qualifier())?))
}

pub async fn update(
    State(app): State<SharedState>,
    scope: Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    Ok(object(
        app.registry
            .update_service(&scope.service, &fields, if_match(&headers)?)
            .await?,
    ))
}

pub async fn delete(State(app): State<SharedState>, scope: Scope, headers: HeaderMap) -> ApiResult<Response> {
    app.registry.delete_service(&scope.service, if_match(&headers)?).await?;
    Ok(no_content())
}

pub async fn list(State(app): State<SharedState>, query: QueryMap) -> ApiResult<Response> {
    let (items, next) = app.registry.list_services(&query.list_query()?)?;
    Ok(page("services", items, next))
}
