//! FC's ListInstances (`GET .../functions/{f}/instances`) and recycling an
//! instance (`POST .../instances/{id}/recycle`, a wasmfc extension): the
//! pool's live instances of a function, as the console's "log into the
//! instance" page shows them.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Scope, json as json_response};
use crate::api::{ApiError, ApiResult, SharedState};
use crate::pool::InstanceInfo;

fn instance_json(i: &InstanceInfo) -> Value {
    json!({
        "instanceId": i.instance_id,
        "versionId": i.version.map_or_else(|| "LATEST".to_string(), |v| v.to_string()),
        // wasmfc's own fields: what the pool knows of the instance.
        "wasmfc": {
            "startType": if i.provisioned { "provisioned" } else { "on-demand" },
            "status": if i.busy { "Busy" } else { "Idle" },
            "current": i.current,
            "memoryBytes": i.memory_bytes,
            "memoryLimitBytes": i.memory_limit_bytes,
            "createdTime": i.created_ms,
            "ageMs": i.age.as_millis() as u64,
            "invocations": i.invocations,
            "recycling": i.recycling,
        },
    })
}

/// `GET .../services/{s}/functions/{f}/instances?qualifier=&limit=&instanceIds.N=`.
/// With a qualifier, only the instances of the version it resolves to (an
/// alias's main version).
pub async fn list(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let function = scope.function();
    let qualifier = scope.qualifier().or(scope.query.get("qualifier"));
    // Unknown services, functions and qualifiers answer 404, as FC does.
    let resolved = app.registry.resolve_main(&scope.service, qualifier, function)?;
    let limit = scope.query.int("limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to 1000, got {limit}")));
    }
    let wanted: Vec<&str> = scope
        .query
        .0
        .iter()
        .filter(|(k, _)| k.as_str() == "instanceIds" || k.starts_with("instanceIds."))
        .map(|(_, v)| v.as_str())
        .collect();
    let instances: Vec<Value> = app
        .pool
        .instances(&scope.service, function)
        .iter()
        .filter(|i| qualifier.is_none() || i.version == resolved.version)
        .filter(|i| wanted.is_empty() || wanted.contains(&i.instance_id.as_str()))
        .take(limit as usize)
        .map(instance_json)
        .collect();
    Ok(json_response(json!({ "instances": instances })))
}

/// `POST .../instances/{id}/recycle`: the instance is dropped instead of
/// serving again — at once when idle, after its current call when busy.
pub async fn recycle(State(app): State<SharedState>, scope: Scope) -> ApiResult<Response> {
    let function = scope.function();
    app.registry.resolve(&scope.service, None, function)?;
    let id = scope.param("instance");
    if !app.pool.recycle(&scope.service, function, id) {
        return Err(ApiError::not_found(
            "InstanceNotFound",
            format!("function '{function}' has no live instance '{id}'"),
        ));
    }
    Ok(json_response(json!({ "instanceId": id, "recycling": true })))
}
