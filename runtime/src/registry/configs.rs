//! Per-function configs (async invoke, provision, concurrency), per qualifier.

use serde_json::{Map, Value};

use super::{Qualifier, Registry, RegistryError, Result, parse_qualifier};
use crate::store::RegistryChange;

pub use crate::store::ConfigTable;

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
        let change = RegistryChange::PutConfig {
            table,
            service: service.into(),
            function: function.into(),
            qualifier: qualifier.into(),
            doc: Value::Object(doc.clone()),
        };
        self.persist(vec![change]).await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.configs
                .insert((table, function.into(), qualifier.into()), doc.clone());
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
            svc.configs
                .get(&(table, function.to_string(), qualifier.to_string()))
                .cloned()
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
        let change = RegistryChange::DeleteConfig {
            table,
            service: service.into(),
            function: function.into(),
            qualifier: qualifier.into(),
        };
        self.persist(vec![change]).await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.configs.remove(&(table, function.to_string(), qualifier.to_string()));
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
                for ((t, f, q), doc) in &svc.configs {
                    if *t != table {
                        continue;
                    }
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
