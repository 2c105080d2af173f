//! The plan: what the server holds now against what the manifest declares,
//! resource by resource, read through the FC API. Deploy never deletes:
//! what the manifest does not mention is left as it is.

use std::path::Path;

use anyhow::Context;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::manifest::{AliasVersion, Function, Manifest, Service};
use crate::client::{ClientError, FcClient};

/// The API prefix deploy speaks (`?qualifier=` rather than `svc.q` paths).
pub const API: &str = "/2021-04-06";

/// What applying one resource does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create,
    /// With what differs.
    Update(Vec<String>),
    Unchanged,
}

/// One resource's step.
#[derive(Debug)]
pub struct Step {
    /// e.g. `function examples/hello`.
    pub resource: String,
    pub change: Change,
    pub action: Action,
}

/// The request(s) a step sends when it is not unchanged.
#[derive(Debug)]
pub enum Action {
    Service {
        name: String,
        body: Value,
    },
    Function {
        service: String,
        name: String,
        body: Map<String, Value>,
        code_bytes: usize,
    },
    AsyncConfig {
        path: String,
        body: Value,
    },
    Trigger {
        service: String,
        function: String,
        name: String,
        body: Value,
    },
    /// `publish`: publish a version first and point the alias at it.
    Alias {
        service: String,
        name: String,
        version: Option<u64>,
        publish: bool,
        description: String,
    },
    Provision {
        path: String,
        target: i64,
    },
}

/// GET `path`, or `None` on a 404.
async fn get_opt(client: &FcClient, path: &str) -> anyhow::Result<Option<Value>> {
    match client.get_json(path).await {
        Ok(v) => Ok(Some(v)),
        Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

fn change_of(exists: bool, diffs: Vec<String>) -> Change {
    match (exists, diffs.is_empty()) {
        (false, _) => Change::Create,
        (true, true) => Change::Unchanged,
        (true, false) => Change::Update(diffs),
    }
}

/// The keys of `want` whose values differ from `have`'s (a missing key in
/// `have` reads as `absent`'s entry for it, the server's default).
fn diff(want: &Map<String, Value>, have: &Value, absent: &Map<String, Value>) -> Vec<String> {
    want.iter()
        .filter(|(k, v)| {
            let current = have
                .get(k.as_str())
                .or_else(|| absent.get(k.as_str()))
                .unwrap_or(&Value::Null);
            current != *v
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// A function's settings as FC's JSON fields.
fn function_settings(f: &Function) -> Map<String, Value> {
    let handler = f
        .code
        .get_ref()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index.wasm".into());
    let doc = json!({
        "runtime": "wasm",
        "handler": handler,
        "description": f.description,
        "timeout": f.timeout.0,
        "memorySize": f.memory.0,
        "instanceConcurrency": f.instance_concurrency.0,
        "environmentVariables": f.env,
        "initializer": f.initializer,
        "allowedOutboundHosts": f.allowed_outbound_hosts,
    });
    doc.as_object().cloned().unwrap_or_default()
}

fn server_defaults() -> Map<String, Value> {
    json!({ "allowedOutboundHosts": [], "initializer": "", "description": "", "environmentVariables": {} })
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Reads the server and plans every resource of `manifest` (whose paths
/// are relative to `base`).
pub async fn plan(client: &FcClient, manifest: &Manifest, base: &Path) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for service in &manifest.services {
        plan_service(client, service, base, &mut steps).await?;
    }
    Ok(steps)
}

async fn plan_service(client: &FcClient, s: &Service, base: &Path, steps: &mut Vec<Step>) -> anyhow::Result<()> {
    let name = &s.name.0;
    let current = get_opt(client, &format!("{API}/services/{name}")).await?;
    let want = json!({ "description": s.description });
    let diffs = current
        .as_ref()
        .map(|c| diff(want.as_object().unwrap_or(&Map::new()), c, &server_defaults()))
        .unwrap_or_default();
    steps.push(Step {
        resource: format!("service {name}"),
        change: change_of(current.is_some(), diffs),
        action: Action::Service {
            name: name.clone(),
            body: json!({ "serviceName": name, "description": s.description }),
        },
    });
    let mut functions_change = false;
    for f in &s.functions {
        let step = plan_function(client, name, f, base, current.is_some()).await?;
        functions_change |= step.change != Change::Unchanged;
        steps.push(step);
        plan_function_parts(client, name, f, current.is_some(), steps).await?;
    }
    for alias in &s.aliases {
        steps.push(plan_alias(client, s, alias, functions_change, current.is_some()).await?);
    }
    for f in &s.functions {
        for p in &f.provision {
            let path = format!(
                "{API}/services/{name}/functions/{}/provision-config?qualifier={}",
                f.name, p.qualifier
            );
            let have = if current.is_some() {
                get_opt(client, &path).await.ok().flatten()
            } else {
                None
            };
            let target = have.as_ref().and_then(|h| h.get("target")).and_then(Value::as_i64);
            let change = match target {
                None | Some(0) if p.target.0 != 0 => Change::Create,
                Some(t) if t != p.target.0 => Change::Update(vec![format!("target {t} → {}", p.target.0)]),
                _ => Change::Unchanged,
            };
            steps.push(Step {
                resource: format!("provision {name}/{}@{}", f.name, p.qualifier),
                change,
                action: Action::Provision {
                    path,
                    target: p.target.0,
                },
            });
        }
    }
    Ok(())
}

async fn plan_function(
    client: &FcClient,
    service: &str,
    f: &Function,
    base: &Path,
    service_exists: bool,
) -> anyhow::Result<Step> {
    let path = base.join(f.code.get_ref());
    let code = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let checksum = crate::registry::crc64(&code).to_string();
    let current = if service_exists {
        get_opt(client, &format!("{API}/services/{service}/functions/{}", f.name)).await?
    } else {
        None
    };
    let mut body = function_settings(f);
    let mut diffs = current
        .as_ref()
        .map(|c| diff(&body, c, &server_defaults()))
        .unwrap_or_default();
    let code_changed = current
        .as_ref()
        .is_none_or(|c| c.get("codeChecksum").and_then(Value::as_str) != Some(checksum.as_str()));
    let mut code_bytes = 0;
    if code_changed {
        use base64::Engine as _;
        code_bytes = code.len();
        body.insert(
            "code".into(),
            json!({ "zipFile": base64::engine::general_purpose::STANDARD.encode(&code) }),
        );
        if current.is_some() {
            diffs.push("code".into());
        }
    }
    body.insert("functionName".into(), json!(f.name.0));
    Ok(Step {
        resource: format!("function {service}/{}", f.name),
        change: change_of(current.is_some(), diffs),
        action: Action::Function {
            service: service.into(),
            name: f.name.0.clone(),
            body,
            code_bytes,
        },
    })
}

/// The async policy and the triggers of one function.
async fn plan_function_parts(
    client: &FcClient,
    service: &str,
    f: &Function,
    service_exists: bool,
    steps: &mut Vec<Step>,
) -> anyhow::Result<()> {
    let fpath = format!("{API}/services/{service}/functions/{}", f.name);
    if let Some(policy) = &f.async_policy {
        let mut want = Map::new();
        want.insert("statefulInvocation".into(), json!(policy.task_mode));
        want.insert("maxAsyncRetryAttempts".into(), json!(policy.max_retries.0));
        if let Some(age) = policy.max_event_age {
            want.insert("maxAsyncEventAgeInSeconds".into(), json!(age.0));
        }
        let mut dest = Map::new();
        for (key, arn) in [("onSuccess", &policy.on_success), ("onFailure", &policy.on_failure)] {
            if let Some(arn) = arn {
                dest.insert(key.into(), json!({ "destination": arn }));
            }
        }
        want.insert("destinationConfig".into(), Value::Object(dest));
        let path = format!("{fpath}/async-invoke-config?qualifier=LATEST");
        let have = if service_exists {
            get_opt(client, &path).await?
        } else {
            None
        };
        let diffs = have.as_ref().map(|h| diff(&want, h, &Map::new())).unwrap_or_default();
        steps.push(Step {
            resource: format!("async-config {service}/{}", f.name),
            change: change_of(have.is_some(), diffs),
            action: Action::AsyncConfig {
                path,
                body: Value::Object(want),
            },
        });
    }
    for t in &f.triggers {
        let methods: Vec<String> = t.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        let config = json!({ "authType": t.auth.as_str(), "methods": methods });
        let have = if service_exists {
            get_opt(client, &format!("{fpath}/triggers/{}", t.name)).await?
        } else {
            None
        };
        let mut diffs = Vec::new();
        if let Some(h) = &have {
            let hc = h.get("triggerConfig").cloned().unwrap_or(Value::Null);
            if hc.get("authType") != config.get("authType") || hc.get("methods") != config.get("methods") {
                diffs.push("triggerConfig".into());
            }
            if h.get("qualifier").and_then(Value::as_str) != Some(t.qualifier.as_str()) {
                diffs.push("qualifier".into());
            }
        }
        steps.push(Step {
            resource: format!("trigger {service}/{}/{}", f.name, t.name),
            change: change_of(have.is_some(), diffs),
            action: Action::Trigger {
                service: service.into(),
                function: f.name.0.clone(),
                name: t.name.0.clone(),
                body: json!({
                    "triggerName": t.name.0, "triggerType": "http",
                    "triggerConfig": config, "qualifier": t.qualifier,
                }),
            },
        });
    }
    Ok(())
}

/// An alias, and whether `version = "latest"` needs a new version: when a
/// function of the service changes in this deploy, or LATEST differs from
/// the newest published version (a function's modification time differs
/// from its snapshot's, or the sets of functions differ).
async fn plan_alias(
    client: &FcClient,
    s: &Service,
    alias: &super::manifest::Alias,
    functions_change: bool,
    service_exists: bool,
) -> anyhow::Result<Step> {
    let service = &s.name.0;
    let have = if service_exists {
        get_opt(client, &format!("{API}/services/{service}/aliases/{}", alias.name)).await?
    } else {
        None
    };
    let (version, publish) = match alias.version {
        AliasVersion::Number(n) => (Some(n), false),
        AliasVersion::Latest => {
            let newest = if service_exists {
                newest_version(client, service).await?
            } else {
                None
            };
            match newest {
                Some(v) if !functions_change && !latest_differs(client, service, v).await? => (Some(v), false),
                _ => (None, true),
            }
        }
    };
    let mut diffs = Vec::new();
    if let Some(h) = &have {
        let current = h
            .get("versionId")
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<u64>().ok());
        if publish || current != version {
            diffs.push(match version {
                Some(v) => format!("version {} → {v}", current.map_or("?".into(), |c| c.to_string())),
                None => "version → a new one, published now".into(),
            });
        }
        if h.get("description").and_then(Value::as_str).unwrap_or("") != alias.description {
            diffs.push("description".into());
        }
    }
    Ok(Step {
        resource: format!("alias {service}/{}", alias.name),
        change: change_of(have.is_some(), diffs),
        action: Action::Alias {
            service: service.clone(),
            name: alias.name.0.clone(),
            version,
            publish,
            description: alias.description.clone(),
        },
    })
}

async fn newest_version(client: &FcClient, service: &str) -> anyhow::Result<Option<u64>> {
    let list = client
        .get_json(&format!("{API}/services/{service}/versions?limit=1"))
        .await?;
    Ok(list["versions"]
        .get(0)
        .and_then(|v| v["versionId"].as_str())
        .and_then(|v| v.parse().ok()))
}

async fn latest_differs(client: &FcClient, service: &str, version: u64) -> anyhow::Result<bool> {
    let stamps = |v: Value| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = v["functions"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|f| {
                        (
                            f["functionName"].as_str().unwrap_or("").to_string(),
                            f["lastModifiedTime"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    };
    let path = |q: &str| format!("{API}/services/{service}/functions?limit=1000&qualifier={q}");
    let latest = stamps(client.get_json(&path("LATEST")).await?);
    let published = stamps(client.get_json(&path(&version.to_string())).await?);
    Ok(latest != published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_missing_on_the_server_compares_as_its_default() {
        let want = json!({ "timeout": 3, "allowedOutboundHosts": [], "memorySize": 256 });
        let have = json!({ "timeout": 3, "memorySize": 128 });
        let differ = diff(want.as_object().unwrap(), &have, &server_defaults());
        assert_eq!(differ, ["memorySize"]);
        assert_eq!(change_of(true, vec![]), Change::Unchanged);
        assert_eq!(change_of(false, vec![]), Change::Create);
    }
}
