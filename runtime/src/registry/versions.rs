//! Published versions and aliases.

use serde_json::{Map, Value, json};

use super::resolve::alias_versions;
use super::{
    Doc, Fields, ListQuery, Page, Qualifier, Registry, RegistryError, Result, Version, check_if_match, names,
    parse_qualifier,
};
use crate::store::RegistryChange;
use crate::util::iso_now;

impl Registry {
    pub async fn publish_version(&self, service: &str, body: &Fields) -> Result<Map<String, Value>> {
        let description = body.str("description")?.unwrap_or_default();
        let _guard = self.inner.write_lock.lock().await;
        let (id, functions) = self.service_entry(service, |s| Ok((s.last_version + 1, s.functions.clone())))?;
        let now = iso_now();
        let mut doc = Map::new();
        doc.insert("versionId".into(), json!(id.to_string()));
        doc.insert("description".into(), json!(description));
        doc.insert("createdTime".into(), json!(now));
        doc.insert("lastModifiedTime".into(), json!(now));
        let snapshot: Map<String, Value> = functions
            .iter()
            .map(|(k, v)| (k.clone(), Value::Object(v.doc.clone())))
            .collect();
        self.persist(vec![
            RegistryChange::PutVersion {
                service: service.into(),
                version_id: id,
                doc: Value::Object(doc.clone()),
                functions: Value::Object(snapshot),
            },
            RegistryChange::SetVersionCounter {
                service: service.into(),
                last: id,
            },
        ])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.last_version = id;
            s.versions.insert(
                id,
                Version {
                    doc: doc.clone(),
                    functions,
                },
            );
        }
        Ok(doc)
    }

    /// Lists versions, newest first unless `direction` is `FORWARD`.
    pub fn list_versions(
        &self,
        service: &str,
        q: &ListQuery,
        direction: Option<&str>,
    ) -> Result<(Vec<Doc>, Option<String>, String)> {
        let forward = match direction {
            None | Some("") | Some("BACKWARD") => false,
            Some("FORWARD") => true,
            Some(other) => {
                return Err(RegistryError::InvalidArgument(format!(
                    "direction must be FORWARD or BACKWARD, got '{other}'"
                )));
            }
        };
        self.service_entry(service, |s| {
            let limit = q.limit()?;
            let start: Option<u64> = q
                .next_token
                .as_deref()
                .or(q.start_key.as_deref())
                .map(|t| {
                    t.parse()
                        .map_err(|_| RegistryError::InvalidArgument(format!("invalid nextToken/startKey '{t}'")))
                })
                .transpose()?;
            let ids: Vec<u64> = if forward {
                s.versions
                    .keys()
                    .copied()
                    .filter(|v| start.is_none_or(|st| *v >= st))
                    .collect()
            } else {
                s.versions
                    .keys()
                    .rev()
                    .copied()
                    .filter(|v| start.is_none_or(|st| *v <= st))
                    .collect()
            };
            let next = ids.get(limit).map(|v| v.to_string());
            let page = ids.iter().take(limit).map(|v| s.versions[v].doc.clone()).collect();
            Ok((page, next, if forward { "FORWARD" } else { "BACKWARD" }.to_string()))
        })
    }

    pub async fn delete_version(&self, service: &str, version: &str) -> Result<()> {
        let _guard = self.inner.write_lock.lock().await;
        let id = self.service_entry(service, |s| {
            let id = match parse_qualifier(Some(version)) {
                Qualifier::Version(v) if s.versions.contains_key(&v) => v,
                _ => {
                    return Err(RegistryError::VersionNotFound {
                        service: service.into(),
                        version: version.into(),
                    });
                }
            };
            if let Some((alias, _)) = s.aliases.iter().find(|(_, a)| alias_versions(a).contains(&id)) {
                return Err(RegistryError::InvalidArgument(format!(
                    "version {id} is used by alias '{alias}'; point the alias elsewhere first"
                )));
            }
            Ok(id)
        })?;
        self.persist(vec![RegistryChange::DeleteVersion {
            service: service.into(),
            version_id: id,
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.versions.remove(&id);
        }
        Ok(())
    }

    // ---- aliases -------------------------------------------------------

    pub async fn create_alias(&self, service: &str, body: &Fields) -> Result<Map<String, Value>> {
        let name = body
            .str("aliasName")?
            .ok_or_else(|| RegistryError::InvalidArgument("aliasName is required".into()))?;
        names::alias(&name)?;
        let _guard = self.inner.write_lock.lock().await;
        self.service_entry(service, |s| {
            if s.aliases.contains_key(&name) {
                return Err(RegistryError::AlreadyExists {
                    kind: "alias",
                    name: name.clone(),
                });
            }
            Ok(())
        })?;
        let now = iso_now();
        let mut doc = Map::new();
        doc.insert("aliasName".into(), json!(name));
        doc.insert("description".into(), json!(""));
        doc.insert("additionalVersionWeight".into(), json!({}));
        doc.insert("createdTime".into(), json!(now));
        doc.insert("lastModifiedTime".into(), json!(now));
        if !body.has("versionId") {
            return Err(RegistryError::InvalidArgument("versionId is required".into()));
        }
        self.apply_alias_fields(service, body, &mut doc)?;
        self.persist(vec![RegistryChange::PutAlias {
            service: service.into(),
            name: name.clone(),
            doc: Value::Object(doc.clone()),
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.aliases.insert(name, doc.clone());
        }
        Ok(doc)
    }

    pub fn get_alias(&self, service: &str, name: &str) -> Result<Map<String, Value>> {
        self.service_entry(service, |s| {
            s.aliases
                .get(name)
                .cloned()
                .ok_or_else(|| RegistryError::AliasNotFound {
                    service: service.into(),
                    alias: name.into(),
                })
        })
    }

    pub async fn update_alias(
        &self,
        service: &str,
        name: &str,
        body: &Fields,
        if_match: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let _guard = self.inner.write_lock.lock().await;
        let mut doc = self.get_alias(service, name)?;
        check_if_match(&doc, if_match)?;
        self.apply_alias_fields(service, body, &mut doc)?;
        doc.insert("lastModifiedTime".into(), json!(iso_now()));
        self.persist(vec![RegistryChange::PutAlias {
            service: service.into(),
            name: name.into(),
            doc: Value::Object(doc.clone()),
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.aliases.insert(name.into(), doc.clone());
        }
        Ok(doc)
    }

    pub async fn delete_alias(&self, service: &str, name: &str, if_match: Option<&str>) -> Result<()> {
        let _guard = self.inner.write_lock.lock().await;
        let doc = self.get_alias(service, name)?;
        check_if_match(&doc, if_match)?;
        self.persist(vec![RegistryChange::DeleteAlias {
            service: service.into(),
            name: name.into(),
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.aliases.remove(name);
        }
        Ok(())
    }

    pub fn list_aliases(&self, service: &str, q: &ListQuery) -> Result<Page> {
        self.service_entry(service, |s| {
            q.page(s.aliases.iter().map(|(k, v)| (k.clone(), v.clone())))
        })
    }

    fn apply_alias_fields(&self, service: &str, body: &Fields, doc: &mut Map<String, Value>) -> Result<()> {
        let check_version = |v: &str| -> Result<()> {
            self.service_entry(service, |s| match parse_qualifier(Some(v)) {
                Qualifier::Version(id) if s.versions.contains_key(&id) => Ok(()),
                _ => Err(RegistryError::VersionNotFound {
                    service: service.into(),
                    version: v.into(),
                }),
            })
        };
        if let Some(v) = body.value("versionId") {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(RegistryError::InvalidArgument("versionId must be a string".into())),
            };
            check_version(&v)?;
            doc.insert("versionId".into(), json!(v));
        }
        if let Some(d) = body.str("description")? {
            doc.insert("description".into(), json!(d));
        }
        if let Some(w) = body.object("additionalVersionWeight")? {
            let mut total = 0.0;
            for (v, weight) in &w {
                check_version(v)?;
                let weight = weight.as_f64().filter(|x| (0.0..=1.0).contains(x)).ok_or_else(|| {
                    RegistryError::InvalidArgument(format!(
                        "additionalVersionWeight.{v} must be a number between 0 and 1"
                    ))
                })?;
                total += weight;
            }
            if total > 1.0 {
                return Err(RegistryError::InvalidArgument(
                    "additionalVersionWeight values must add up to at most 1".into(),
                ));
            }
            doc.insert("additionalVersionWeight".into(), Value::Object(w));
        }
        body.copy_into(&["resolvePolicy", "routePolicy"], doc);
        Ok(())
    }
}
