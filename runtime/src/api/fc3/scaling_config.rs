//! FC 3.0's scaling configs: the newer face of the provision config. Both
//! read and write the one provision config of a version or alias, so the
//! same autoscaler keeps it: `minInstances` is the target,
//! `scheduledPolicies` the scheduled actions and `horizontalScalingPolicies`
//! the target-tracking policies (`minInstances`/`maxInstances` their
//! bounds).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::tasks::configs_of;
use super::{Fc3Scope, page, split_name, with_arn};
use crate::api::fc::provision::put_config;
use crate::api::fc::{QueryMap, json as json_response, no_content};
use crate::api::{ApiError, ApiResult, SharedState};
use crate::registry::{ConfigTable, Fields, ListQuery};

/// (3.0 scaling-policy key, provision target-tracking key).
const POLICY_KEYS: &[(&str, &str)] = &[("minInstances", "minCapacity"), ("maxInstances", "maxCapacity")];

fn renamed(items: Option<&Value>, keys: &[(&str, &str)], to_provision: bool) -> Value {
    let list = items.and_then(Value::as_array).cloned().unwrap_or_default();
    let out = list.into_iter().map(|mut item| {
        if let Value::Object(obj) = &mut item {
            for (scaling, provision) in keys {
                let (from, to) = if to_provision {
                    (scaling, provision)
                } else {
                    (provision, scaling)
                };
                if let Some(v) = obj.remove(*from) {
                    obj.insert((*to).to_string(), v);
                }
            }
        }
        item
    });
    Value::Array(out.collect())
}

/// A PutScalingConfig body as a PutProvisionConfig body. What wasmfc has
/// no counterpart for is refused, not ignored.
fn provision_body(fields: &Fields) -> ApiResult<Map<String, Value>> {
    if fields.has("residentPoolId") {
        return Err(ApiError::invalid(
            "residentPoolId: wasmfc has no resident resource pools",
        ));
    }
    if fields.bool("enableOnDemandScaling")? == Some(false) {
        return Err(ApiError::invalid(
            "enableOnDemandScaling: false is not served; beyond its provisioned instances a function scales on demand",
        ));
    }
    let mut body = Map::new();
    body.insert(
        "defaultTarget".into(),
        fields.value("minInstances").cloned().unwrap_or(json!(0)),
    );
    body.insert(
        "scheduledActions".into(),
        renamed(fields.value("scheduledPolicies"), &[], true),
    );
    body.insert(
        "targetTrackingPolicies".into(),
        renamed(fields.value("horizontalScalingPolicies"), POLICY_KEYS, true),
    );
    Ok(body)
}

/// FC 3.0's `ScalingConfigStatus` of a stored provision config.
fn status_json(app: &SharedState, name: &str, qualifier: &str, stored: &Map<String, Value>) -> Map<String, Value> {
    let (service, function) = split_name(name);
    let key = (service.to_string(), function.to_string(), qualifier.to_string());
    let status = app.autoscaler.status(&key);
    let mut doc = Map::new();
    doc.insert("qualifier".into(), json!(qualifier));
    doc.insert("minInstances".into(), stored.get("target").cloned().unwrap_or(json!(0)));
    doc.insert("targetInstances".into(), json!(status.target));
    let elsewhere = app.autoscaler.provisioned_elsewhere(&key);
    doc.insert("currentInstances".into(), json!(status.current + elsewhere));
    doc.insert("currentError".into(), json!(status.error));
    doc.insert("enableOnDemandScaling".into(), json!(true));
    doc.insert(
        "scheduledPolicies".into(),
        stored.get("scheduledActions").cloned().unwrap_or(json!([])),
    );
    doc.insert(
        "horizontalScalingPolicies".into(),
        renamed(stored.get("targetTrackingPolicies"), POLICY_KEYS, false),
    );
    with_arn(doc, name)
}

fn qualifier(scope: &Fc3Scope) -> String {
    scope.qualifier().unwrap_or("LATEST").to_string()
}

pub async fn put(State(app): State<SharedState>, scope: Fc3Scope, body: Bytes) -> ApiResult<Response> {
    let body = provision_body(&Fields::parse(&body)?)?;
    let q = qualifier(&scope);
    put_config(&app, scope.service(), scope.function(), &q, &body).await?;
    get_stored(&app, &scope, &q)
}

fn get_stored(app: &SharedState, scope: &Fc3Scope, q: &str) -> ApiResult<Response> {
    let stored = app
        .registry
        .get_function_config(ConfigTable::Provision, scope.service(), scope.function(), q)
        .ok_or_else(|| {
            ApiError::not_found(
                "ScalingConfigNotFound",
                format!("function '{}' has no scaling config for {q}", scope.name),
            )
        })?;
    Ok(json_response(Value::Object(status_json(app, &scope.name, q, &stored))))
}

pub async fn get(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry
        .check_config_target(scope.service(), &q, scope.function(), true)?;
    get_stored(&app, &scope, &q)
}

pub async fn delete(State(app): State<SharedState>, scope: Fc3Scope) -> ApiResult<Response> {
    let q = qualifier(&scope);
    app.registry.get_function(scope.service(), None, scope.function())?;
    if !app
        .registry
        .delete_function_config(ConfigTable::Provision, scope.service(), scope.function(), &q)
        .await?
    {
        return Err(ApiError::not_found(
            "ScalingConfigNotFound",
            format!("function '{}' has no scaling config for {q}", scope.name),
        ));
    }
    app.autoscaler.nudge();
    Ok(no_content())
}

/// ListScalingConfigs (`functionName`, `limit`, `nextToken`).
pub async fn list(State(app): State<SharedState>, query: QueryMap) -> ApiResult<Response> {
    let configs = configs_of(&app, ConfigTable::Provision, &query)?;
    let list = ListQuery {
        next_token: query.get("nextToken").map(str::to_string),
        limit: query.int("limit")?,
        ..Default::default()
    };
    let items = configs
        .into_iter()
        .map(|(name, q, doc)| (format!("{name}#{q}"), status_json(&app, &name, &q, &doc)));
    let (items, next) = list.page(items)?;
    Ok(page("scalingConfigs", items, next))
}
