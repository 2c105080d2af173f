//! Triggers: Create/Get/Update/Delete/ListTriggers, and the lookup the HTTP
//! trigger route makes on every request.
//!
//! wasmfc runs HTTP triggers (`triggerType: "http"`); other FC trigger
//! types are event sources (OSS, timers, queues) this server does not
//! have, so creating one is a 400 rather than a trigger that never fires.

use std::collections::BTreeMap;

use http::Method;
use serde_json::{Map, Value, json};

use super::{Fields, ListQuery, Page, Registry, RegistryError, Result, ServiceEntry, check_if_match, iso_now, names};
use crate::store::RegistryChange;

/// Methods an HTTP trigger may list.
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"];

/// An HTTP trigger, as the trigger route needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    pub name: String,
    /// `authType: function`: requests must carry an FC signature.
    pub requires_signature: bool,
    pub methods: Vec<Method>,
}

impl HttpTrigger {
    fn from_doc(doc: &Map<String, Value>) -> Option<HttpTrigger> {
        if doc.get("triggerType").and_then(Value::as_str) != Some("http") {
            return None;
        }
        let config = doc.get("triggerConfig")?;
        let requires_signature = config.get("authType").and_then(Value::as_str) == Some("function");
        let methods = config
            .get("methods")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|s| Method::from_bytes(s.as_bytes()).ok())
                    .collect()
            })
            .unwrap_or_default();
        Some(HttpTrigger {
            name: doc
                .get("triggerName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            requires_signature,
            methods,
        })
    }

    pub fn allows(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }
}

/// `triggerConfig` arrives as an object (aliyun-fc2) or as a string holding
/// JSON (alibabacloud-fc-open20210406); both are stored as the object.
fn trigger_config(body: &Fields) -> Result<Option<Map<String, Value>>> {
    match body.value("triggerConfig") {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => Err(RegistryError::InvalidArgument(
                "triggerConfig must be a JSON object (or a string holding one)".into(),
            )),
        },
        Some(_) => Err(RegistryError::InvalidArgument(
            "triggerConfig must be a JSON object (or a string holding one)".into(),
        )),
    }
}

/// Validates an HTTP trigger's config and returns it normalised: method
/// names upper-cased, `authType` defaulted to `anonymous`.
fn http_config(mut config: Map<String, Value>) -> Result<Map<String, Value>> {
    let auth = match config.get("authType") {
        None | Some(Value::Null) => "anonymous".to_string(),
        Some(Value::String(a)) if a == "anonymous" || a == "function" => a.clone(),
        Some(other) => {
            return Err(RegistryError::InvalidArgument(format!(
                "triggerConfig.authType must be \"anonymous\" or \"function\", got {other}"
            )));
        }
    };
    let methods = match config.get("methods") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_ascii_uppercase)
                    .filter(|m| METHODS.contains(&m.as_str()))
                    .ok_or_else(|| {
                        RegistryError::InvalidArgument(format!(
                            "triggerConfig.methods: {m} is not one of {}",
                            METHODS.join(", ")
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?,
        _ => {
            return Err(RegistryError::InvalidArgument(
                "triggerConfig.methods must be a non-empty array of HTTP methods".into(),
            ));
        }
    };
    config.insert("authType".into(), json!(auth));
    config.insert("methods".into(), json!(methods));
    Ok(config)
}

/// The triggers of `function` (none yet: `None`); FunctionNotFound when
/// the function does not exist.
fn triggers_of<'a>(
    s: &'a ServiceEntry,
    service: &str,
    function: &str,
) -> Result<Option<&'a BTreeMap<String, Map<String, Value>>>> {
    if !s.functions.contains_key(function) {
        return Err(RegistryError::FunctionNotFound {
            service: service.into(),
            function: function.into(),
        });
    }
    Ok(s.triggers.get(function))
}

impl Registry {
    fn check_trigger_qualifier(&self, service: &str, function: &str, qualifier: &str) -> Result<()> {
        self.resolve(service, Some(qualifier), function).map(|_| ())
    }

    pub async fn create_trigger(&self, service: &str, function: &str, body: &Fields) -> Result<Map<String, Value>> {
        let name = body
            .str("triggerName")?
            .ok_or_else(|| RegistryError::InvalidArgument("triggerName is required".into()))?;
        names::trigger(&name)?;
        let trigger_type = body
            .str("triggerType")?
            .ok_or_else(|| RegistryError::InvalidArgument("triggerType is required".into()))?;
        if trigger_type != "http" {
            return Err(RegistryError::InvalidArgument(format!(
                "triggerType '{trigger_type}' is not supported: wasmfc serves HTTP triggers (\"http\")"
            )));
        }
        let config = http_config(
            trigger_config(body)?.ok_or_else(|| RegistryError::InvalidArgument("triggerConfig is required".into()))?,
        )?;
        let qualifier = body.str("qualifier")?.unwrap_or_else(|| "LATEST".into());
        let description = body.str("description")?.unwrap_or_default();
        let _guard = self.inner.write_lock.lock().await;
        self.check_trigger_qualifier(service, function, &qualifier)?;
        self.service_entry(service, |s| {
            let existing = s.triggers.get(function);
            if existing.is_some_and(|t| t.contains_key(&name)) {
                return Err(RegistryError::AlreadyExists {
                    kind: "trigger",
                    name: name.clone(),
                });
            }
            // One HTTP trigger per function, as FC has it: with two, which
            // one's authType applies would depend on their names, and an
            // anonymous second trigger would silently open a function the
            // first one protects.
            if let Some(other) = existing.and_then(|t| t.keys().next()) {
                return Err(RegistryError::HttpTriggerExists {
                    function: function.into(),
                    existing: other.clone(),
                });
            }
            Ok(())
        })?;
        let now = iso_now();
        let mut doc = Map::new();
        doc.insert("triggerName".into(), json!(name));
        doc.insert("triggerId".into(), json!(uuid::Uuid::new_v4().to_string()));
        doc.insert("triggerType".into(), json!(trigger_type));
        doc.insert("triggerConfig".into(), Value::Object(config));
        doc.insert(
            "sourceArn".into(),
            body.value("sourceArn").cloned().unwrap_or(Value::Null),
        );
        doc.insert(
            "invocationRole".into(),
            body.value("invocationRole").cloned().unwrap_or(Value::Null),
        );
        doc.insert("qualifier".into(), json!(qualifier));
        doc.insert("description".into(), json!(description));
        doc.insert("createdTime".into(), json!(now));
        doc.insert("lastModifiedTime".into(), json!(now));
        self.put_trigger(service, function, &name, doc.clone()).await?;
        Ok(doc)
    }

    async fn put_trigger(&self, service: &str, function: &str, name: &str, doc: Map<String, Value>) -> Result<()> {
        self.persist(vec![RegistryChange::PutTrigger {
            service: service.into(),
            function: function.into(),
            name: name.into(),
            doc: Value::Object(doc.clone()),
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.triggers
                .entry(function.to_string())
                .or_default()
                .insert(name.to_string(), doc);
        }
        Ok(())
    }

    pub fn get_trigger(&self, service: &str, function: &str, name: &str) -> Result<Map<String, Value>> {
        self.service_entry(service, |s| {
            triggers_of(s, service, function)?
                .and_then(|t| t.get(name))
                .cloned()
                .ok_or_else(|| RegistryError::TriggerNotFound {
                    function: function.into(),
                    trigger: name.into(),
                })
        })
    }

    pub async fn update_trigger(
        &self,
        service: &str,
        function: &str,
        name: &str,
        body: &Fields,
        if_match: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let _guard = self.inner.write_lock.lock().await;
        let mut doc = self.get_trigger(service, function, name)?;
        check_if_match(&doc, if_match)?;
        if let Some(config) = trigger_config(body)? {
            doc.insert("triggerConfig".into(), Value::Object(http_config(config)?));
        }
        if let Some(q) = body.str("qualifier")? {
            self.check_trigger_qualifier(service, function, &q)?;
            doc.insert("qualifier".into(), json!(q));
        }
        if let Some(d) = body.str("description")? {
            doc.insert("description".into(), json!(d));
        }
        if let Some(role) = body.value("invocationRole") {
            doc.insert("invocationRole".into(), role.clone());
        }
        doc.insert("lastModifiedTime".into(), json!(iso_now()));
        self.put_trigger(service, function, name, doc.clone()).await?;
        Ok(doc)
    }

    pub async fn delete_trigger(
        &self,
        service: &str,
        function: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let _guard = self.inner.write_lock.lock().await;
        let doc = self.get_trigger(service, function, name)?;
        check_if_match(&doc, if_match)?;
        self.persist(vec![RegistryChange::DeleteTrigger {
            service: service.into(),
            function: function.into(),
            name: name.into(),
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service)
            && let Some(t) = s.triggers.get_mut(function)
        {
            t.remove(name);
        }
        Ok(())
    }

    pub fn list_triggers(&self, service: &str, function: &str, q: &ListQuery) -> Result<Page> {
        self.service_entry(service, |s| {
            let triggers = triggers_of(s, service, function)?;
            q.page(triggers.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())))
        })
    }

    /// The HTTP trigger that serves `function` at `qualifier` (`LATEST`
    /// when the URL names none).
    pub fn http_trigger(&self, service: &str, function: &str, qualifier: Option<&str>) -> Result<HttpTrigger> {
        let qualifier = qualifier.filter(|q| !q.is_empty()).unwrap_or("LATEST");
        self.service_entry(service, |s| {
            triggers_of(s, service, function)?
                .into_iter()
                .flat_map(|t| t.values())
                .filter(|doc| doc.get("qualifier").and_then(Value::as_str).unwrap_or("LATEST") == qualifier)
                .filter_map(HttpTrigger::from_doc)
                // A store written before one trigger per function was
                // enforced may hold several: the strictest one applies.
                .max_by_key(|t| t.requires_signature)
                .ok_or_else(|| RegistryError::TriggerNotFound {
                    function: function.into(),
                    trigger: format!("(an HTTP trigger for qualifier {qualifier})"),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_config_is_validated_and_normalised() {
        let ok = http_config(json!({"methods": ["get", "POST"]}).as_object().cloned().unwrap()).unwrap();
        assert_eq!(ok["authType"], "anonymous");
        assert_eq!(ok["methods"], json!(["GET", "POST"]));
        for bad in [
            json!({"methods": []}),
            json!({"authType": "anonymous"}),
            json!({"methods": ["FETCH"]}),
            json!({"methods": ["GET"], "authType": "sometimes"}),
        ] {
            assert!(http_config(bad.as_object().cloned().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn trigger_config_may_be_a_json_string() {
        let f = Fields::from_map(
            json!({"triggerConfig": "{\"authType\": \"function\", \"methods\": [\"GET\"]}"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(trigger_config(&f).unwrap().unwrap()["authType"], "function");
        let bad = Fields::from_map(json!({"triggerConfig": "nope"}).as_object().cloned().unwrap());
        assert!(trigger_config(&bad).is_err());
    }

    #[test]
    fn http_trigger_reads_auth_and_methods() {
        let doc = json!({"triggerName": "t", "triggerType": "http",
            "triggerConfig": {"authType": "function", "methods": ["GET", "PUT"]}});
        let t = HttpTrigger::from_doc(doc.as_object().unwrap()).unwrap();
        assert!(t.requires_signature);
        assert!(t.allows(&Method::PUT));
        assert!(!t.allows(&Method::POST));
    }
}
