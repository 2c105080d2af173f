//! The forms that manage a function's HTTP triggers and its service's
//! versions and aliases. Each goes straight to the registry call the FC
//! handlers make (CreateTrigger, DeleteTrigger, PublishServiceVersion,
//! DeleteServiceVersion, CreateAlias/UpdateAlias, DeleteAlias), so the
//! rules (names, a version in use by an alias, ...) are the API's.

use axum::extract::{Form, Path, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::views::function_href;
use super::{PageError, PageResult, see_other};
use crate::api::SharedState;
use crate::registry::Fields;

fn back(service: &str, function: &str) -> axum::response::Response {
    see_other(&format!("{}#more-h", function_href(service, function)))
}

#[derive(Deserialize)]
pub struct TriggerForm {
    name: String,
    /// Comma- or space-separated HTTP methods.
    methods: String,
    /// `anonymous` or `function` (signed requests only).
    auth: String,
}

pub async fn create_trigger(
    State(app): State<SharedState>,
    Path((service, function)): Path<(String, String)>,
    Form(form): Form<TriggerForm>,
) -> PageResult {
    let methods: Vec<String> = form
        .methods
        .split([',', ' '])
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect();
    let body = json!({
        "triggerName": form.name.trim(),
        "triggerType": "http",
        "triggerConfig": { "authType": form.auth.trim(), "methods": methods },
    });
    let Value::Object(body) = body else {
        return Err(PageError::invalid("the trigger form is malformed"));
    };
    app.registry
        .create_trigger(&service, &function, &Fields::from_map(body))
        .await?;
    Ok(back(&service, &function))
}

pub async fn delete_trigger(
    State(app): State<SharedState>,
    Path((service, function, trigger)): Path<(String, String, String)>,
) -> PageResult {
    app.registry.delete_trigger(&service, &function, &trigger, None).await?;
    Ok(back(&service, &function))
}

#[derive(Deserialize)]
pub struct VersionForm {
    #[serde(default)]
    description: String,
}

pub async fn publish_version(
    State(app): State<SharedState>,
    Path((service, function)): Path<(String, String)>,
    Form(form): Form<VersionForm>,
) -> PageResult {
    let mut body = Map::new();
    body.insert("description".into(), json!(form.description.trim()));
    app.registry.publish_version(&service, &Fields::from_map(body)).await?;
    Ok(back(&service, &function))
}

pub async fn delete_version(
    State(app): State<SharedState>,
    Path((service, function, version)): Path<(String, String, String)>,
) -> PageResult {
    app.registry.delete_version(&service, &version).await?;
    Ok(back(&service, &function))
}

#[derive(Deserialize)]
pub struct AliasForm {
    name: String,
    version: String,
}

/// Creates the alias, or points an existing one at another version.
pub async fn save_alias(
    State(app): State<SharedState>,
    Path((service, function)): Path<(String, String)>,
    Form(form): Form<AliasForm>,
) -> PageResult {
    let name = form.name.trim();
    let mut body = Map::new();
    body.insert("versionId".into(), json!(form.version.trim()));
    if app.registry.get_alias(&service, name).is_ok() {
        app.registry
            .update_alias(&service, name, &Fields::from_map(body), None)
            .await?;
    } else {
        body.insert("aliasName".into(), json!(name));
        app.registry.create_alias(&service, &Fields::from_map(body)).await?;
    }
    Ok(back(&service, &function))
}

pub async fn delete_alias(
    State(app): State<SharedState>,
    Path((service, function, alias)): Path<(String, String, String)>,
) -> PageResult {
    app.registry.delete_alias(&service, &alias, None).await?;
    Ok(back(&service, &function))
}
