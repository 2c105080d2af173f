//! Versions (Publish/List/Delete) and aliases (Create/Get/Update/List/Delete).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};

use super::{Scope, if_match, json, no_content, object, page};
use crate::api::{ApiResult, SharedState};
use crate::registry::Fields;

pub async fn publish(State(app): State<SharedState>, scope: Scope, body: Bytes) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    Ok(object(app.registry.publish_version(&scope.service, &fields).await?))
}

pub async fn list(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let (items, next, direction) =
        app.registry
            .list_versions(&scope.service, &scope.query.list_query()?, scope.query.get("direction"))?;
    let mut body = Map::new();
    body.insert(
        "versions".into(),
        Value::Array(items.into_iter().map(Value::Object).collect()),
    );
    body.insert("nextToken".into(), next.map_or(Value::Null, Value::String));
    body.insert("direction".into(), Value::String(direction));
    Ok(json(Value::Object(body)))
}

pub async fn delete(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    app.registry
        .delete_version(&scope.service, scope.param("version"))
        .await?;
    Ok(no_content())
}

pub async fn create_alias(State(app): State<SharedState>, scope: Scope, body: Bytes) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    Ok(object(app.registry.create_alias(&scope.service, &fields).await?))
}

pub async fn get_alias(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    Ok(object(app.registry.get_alias(&scope.service, scope.param("alias"))?))
}

pub async fn update_alias(
    State(app): State<SharedState>,
    scope: Scope,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let fields = Fields::parse(&body)?;
    Ok(object(
        app.registry
            .update_alias(&scope.service, scope.param("alias"), &fields, if_match(&headers)?)
            .await?,
    ))
}

pub async fn delete_alias(State(app): State<SharedState>, scope: Scope, headers: HeaderMap) -> ApiResult<Response> {
    app.registry
        .delete_alias(&scope.service, scope.param("alias"), if_match(&headers)?)
        .await?;
    Ok(no_content())
}

pub async fn list_aliases(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let (items, next) = app.registry.list_aliases(&scope.service, &scope.query.list_query()?)?;
    Ok(page("aliases", items, next))
}
