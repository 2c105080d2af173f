//! Triggers (Create/Get/Update/List/Delete). Only HTTP triggers exist here;
//! the registry says why in its error for other types.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::{Scope, if_match, no_content, object, page};
use crate::api::{ApiResult, SharedState};
use crate::registry::Fields;

pub async fn create(State(app): State<SharedState>, scope: Scope, body: Bytes) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    Ok(object(
        app.registry
            .create_trigger(&scope.service, scope.function(), &fields)
            .await?,
    ))
}

pub async fn get(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    Ok(object(app.registry.get_trigger(
        &scope.service,
        scope.function(),
        scope.param("trigger"),
    )?))
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
            .update_trigger(
                &scope.service,
                scope.function(),
                scope.param("trigger"),
                &fields,
                if_match(&headers)?,
            )
            .await?,
    ))
}

pub async fn delete(State(app): State<SharedState>, scope: Scope, headers: HeaderMap) -> ApiResult<Response> {
    app.registry
        .delete_trigger(
            &scope.service,
            scope.function(),
            scope.param("trigger"),
            if_match(&headers)?,
        )
        .await?;
    Ok(no_content())
}

pub async fn list(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let (items, next) = app
        .registry
        .list_triggers(&scope.service, scope.function(), &scope.query.list_query()?)?;
    Ok(page("triggers", items, next))
}
