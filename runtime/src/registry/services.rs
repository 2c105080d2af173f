//! Services: create, read, update, delete, list.

use serde_json::{Map, Value, json};

use super::resolve::resolve_version;
use super::{Fields, ListQuery, Page, Registry, RegistryError, Result, ServiceEntry, check_if_match, names};
use crate::store::RegistryChange;
use crate::util::iso_now;

/// Service keys passed through as given.
const SERVICE_PASSTHROUGH: &[&str] = &[
    "role",
    "logConfig",
    "vpcConfig",
    "nasConfig",
    "ossMountConfig",
    "tracingConfig",
];

impl Registry {
    pub async fn create_service(&self, body: &Fields) -> Result<Map<String, Value>> {
        let name = body
            .str("serviceName")?
            .ok_or_else(|| RegistryError::InvalidArgument("serviceName is required".into()))?;
        names::service(&name)?;
        let _guard = self.inner.write_lock.lock().await;
        if self.read(|s| s.services.contains_key(&name)) {
            return Err(RegistryError::AlreadyExists { kind: "service", name });
        }
        let doc = new_service_doc(&name, body)?;
        self.persist(vec![RegistryChange::PutService {
            name: name.clone(),
            doc: Value::Object(doc.clone()),
        }])
        .await?;
        self.inner.state.write().services.insert(
            name,
            ServiceEntry {
                doc: doc.clone(),
                ..Default::default()
            },
        );
        Ok(doc)
    }

    /// `Ok` when the service exists (404 otherwise).
    pub fn service_exists(&self, name: &str) -> Result<()> {
        self.service_entry(name, |_| Ok(()))
    }

    pub fn get_service(&self, name: &str, qualifier: Option<&str>) -> Result<Map<String, Value>> {
        self.service_entry(name, |s| {
            if let Some(q) = qualifier {
                resolve_version(name, s, q)?;
            }
            Ok(s.doc.clone())
        })
    }

    pub async fn update_service(
        &self,
        name: &str,
        body: &Fields,
        if_match: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let _guard = self.inner.write_lock.lock().await;
        let mut doc = self.service_entry(name, |s| Ok(s.doc.clone()))?;
        check_if_match(&doc, if_match)?;
        apply_service_fields(body, &mut doc)?;
        doc.insert("lastModifiedTime".into(), json!(iso_now()));
        self.persist(vec![RegistryChange::PutService {
            name: name.to_string(),
            doc: Value::Object(doc.clone()),
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(name) {
            s.doc = doc.clone();
        }
        Ok(doc)
    }

    /// Deletes a service. As in FC, it must hold no functions, versions or
    /// aliases first.
    pub async fn delete_service(&self, name: &str, if_match: Option<&str>) -> Result<()> {
        let _guard = self.inner.write_lock.lock().await;
        self.service_entry(name, |s| {
            check_if_match(&s.doc, if_match)?;
            if !s.functions.is_empty() {
                return Err(RegistryError::NotEmpty(format!(
                    "service '{name}' still has {} function(s); delete them first",
                    s.functions.len()
                )));
            }
            if !s.aliases.is_empty() {
                return Err(RegistryError::NotEmpty(format!(
                    "service '{name}' still has aliases; delete them first"
                )));
            }
            Ok(())
        })?;
        self.persist(vec![RegistryChange::DeleteService { name: name.to_string() }])
            .await?;
        self.inner.state.write().services.remove(name);
        Ok(())
    }

    pub fn list_services(&self, q: &ListQuery) -> Result<Page> {
        self.read(|s| q.page(s.services.iter().map(|(k, v)| (k.clone(), v.doc.clone()))))
    }
}

/// A new service's document: its defaults, then the settings of `body`
/// (`description`, `internetAccess` and the passed-through keys).
pub(super) fn new_service_doc(name: &str, body: &Fields) -> Result<Map<String, Value>> {
    let now = iso_now();
    let mut doc = Map::new();
    doc.insert("serviceName".into(), json!(name));
    doc.insert("serviceId".into(), json!(uuid::Uuid::new_v4().to_string()));
    doc.insert("description".into(), json!(""));
    doc.insert("role".into(), json!(""));
    doc.insert("internetAccess".into(), json!(true));
    doc.insert("createdTime".into(), json!(now));
    apply_service_fields(body, &mut doc)?;
    doc.insert("lastModifiedTime".into(), json!(now));
    Ok(doc)
}

fn apply_service_fields(body: &Fields, doc: &mut Map<String, Value>) -> Result<()> {
    if let Some(d) = body.str("description")? {
        if d.len() > 256 {
            return Err(RegistryError::InvalidArgument(
                "description is longer than 256 characters".into(),
            ));
        }
        doc.insert("description".into(), json!(d));
    }
    if let Some(b) = body.bool("internetAccess")? {
        doc.insert("internetAccess".into(), json!(b));
    }
    body.copy_into(SERVICE_PASSTHROUGH, doc);
    Ok(())
}
