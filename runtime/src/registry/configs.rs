//! Per-function configs (async invoke, provision), per qualifier.

use serde_json::{Map, Value};

use super::{Qualifier, Registry, RegistryError, Result, parse_qualifier};
use crate::store::RegistryChange;

/// Which per-function config table an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigTable {
    AsyncInvoke,
    Provision,
}

impl Registry {
    /// The function named by a config's (service, qualifier, function) must
    /// exist; LATEST is allowed unless `versioned_only`.
    pub fn check_config_target(
        &self,
        service: &str,
        qualifier: &str,
        function: &str,
        versioned_only: bool,
    ) -> Result<()> {
        if versioned_only && matches!(parse_qualifier(Some(qualifier)), Qualifier::Latest) {
            return Err(RegistryError::InvalidArgument(
                "the qualifier must be a version or an alias, not LATEST".into(),
            ));
        }
        self.resolve(service, Some(qualifier), function).map(|_| ())
    }

    pub async fn put_function_config(
        &self,
        table: ConfigTable,
        service: &str,
        function: &str,
        qualifier: &str,
        doc: Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        let _guard = self.inner.write_lock.lock().await;
        let change = match table {
            ConfigTable::AsyncInvoke => RegistryChange::PutAsyncConfig {
                service: service.into(),
                function: function.into(),
                qualifier: qualifier.into(),
                doc: Value::Object(doc.clone()),
            },
            ConfigTable::Provision => RegistryChange::PutProvisionConfig {
                service: service.into(),
                function: function.into(),
                qualifier: qualifier.into(),
                doc: Value::Object(doc.clone()),
            },
        };
        self.persist(vec![change]).await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            let key = (function.to_string(), qualifier.to_string());
            match table {
                ConfigTable::AsyncInvoke => s.async_configs.insert(key, doc.clone()),
                ConfigTable::Provision => s.provision_configs.insert(key, doc.clone()),
            };
        }
        Ok(doc)
    }

    pub fn get_function_config(
        &self,
        table: ConfigTable,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Option<Map<String, Value>> {
        self.read(|s| {
            let svc = s.services.get(service)?;
            let key = (function.to_string(), qualifier.to_string());
            match table {
                ConfigTable::AsyncInvoke => svc.async_configs.get(&key).cloned(),
                ConfigTable::Provision => svc.provision_configs.get(&key).cloned(),
            }
        })
    }

    pub async fn delete_function_config(
        &self,
        table: ConfigTable,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<bool> {
        let _guard = self.inner.write_lock.lock().await;
        if self.get_function_config(table, service, function, qualifier).is_none() {
            return Ok(false);
        }
        let change = match table {
            ConfigTable::AsyncInvoke => RegistryChange::DeleteAsyncConfig {
                service: service.into(),
                function: function.into(),
                qualifier: qualifier.into(),
            },
            ConfigTable::Provision => RegistryChange::DeleteProvisionConfig {
                service: service.into(),
                function: function.into(),
                qualifier: qualifier.into(),
            },
        };
        self.persist(vec![change]).await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            let key = (function.to_string(), qualifier.to_string());
            match table {
                ConfigTable::AsyncInvoke => s.async_configs.remove(&key),
                ConfigTable::Provision => s.provision_configs.remove(&key),
            };
        }
        Ok(true)
    }

    /// Every config of `table`, optionally filtered, as (service, function,
    /// qualifier, doc), sorted.
    pub fn list_function_configs(
        &self,
        table: ConfigTable,
        service: Option<&str>,
        function: Option<&str>,
        qualifier: Option<&str>,
    ) -> Vec<(String, String, String, Map<String, Value>)> {
        self.read(|s| {
            let mut out = Vec::new();
            for (svc_name, svc) in &s.services {
                if service.is_some_and(|x| x != svc_name) {
                    continue;
                }
                let map = match table {
                    ConfigTable::AsyncInvoke => &svc.async_configs,
                    ConfigTable::Provision => &svc.provision_configs,
                };
                for ((f, q), doc) in map {
                    if function.is_some_and(|x| x != f) || qualifier.is_some_and(|x| x != q) {
                        continue;
                    }
                    out.push((svc_name.clone(), f.clone(), q.clone(), doc.clone()));
                }
            }
            out
        })
    }
}
