//! Functions with a service of their own: how FC 3.0's service-less
//! functions live in one registry with FC 2.0's services.
//!
//! A 3.0 function `f` is the 2.0 function `f` of service `f`. Its versions
//! and aliases are that service's, which is exactly per function since the
//! service holds only it; a 2.0 client sees it as an ordinary service. A
//! name taken on either side is taken on both (a 409 either way), because
//! the service and the function are created in one commit.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::services::new_service_doc;
use super::spec::FunctionEntry;
use super::{Fields, Registry, RegistryError, Result, events};
use crate::store::RegistryChange;

impl Registry {
    /// FC 3.0's CreateFunction: service `functionName` holding function
    /// `functionName`, stored together or not at all. The service takes
    /// the body's service-level settings (`role`, `logConfig`,
    /// `vpcConfig`, `internetAccess`, ...), which 3.0 sets per function.
    pub async fn create_function_with_service(&self, body: &Fields) -> Result<Map<String, Value>> {
        let new = self.prepare_function(body).await?;
        let service_doc = new_service_doc(&new.name, body)?;
        let _guard = self.inner.write_lock.lock().await;
        if self.read(|s| s.services.contains_key(&new.name)) {
            return Err(RegistryError::AlreadyExists {
                kind: "function",
                name: new.name,
            });
        }
        let mut changes = vec![RegistryChange::PutService {
            name: new.name.clone(),
            doc: Value::Object(service_doc.clone()),
        }];
        changes.extend(new.changes);
        self.store_function(&new.name, &new.name, new.doc, changes, Some(service_doc))
            .await
    }

    /// FC 3.0's DeleteFunction: the function with its triggers and
    /// configs, and — when it was the last function of its service, as a
    /// 3.0 function always is — the service with its versions and aliases,
    /// which in 3.0 belong to the function. One commit.
    pub async fn delete_function_with_service(&self, service: &str, name: &str) -> Result<Arc<FunctionEntry>> {
        let _guard = self.inner.write_lock.lock().await;
        let entry = self.get_function(service, None, name)?;
        let last = self.service_entry(service, |s| Ok(s.functions.len() == 1))?;
        let change = if last {
            RegistryChange::DeleteService { name: service.into() }
        } else {
            RegistryChange::DeleteFunction {
                service: service.into(),
                name: name.into(),
            }
        };
        self.persist(vec![change]).await?;
        {
            let mut st = self.inner.state.write();
            if last {
                st.services.remove(service);
            } else if let Some(s) = st.services.get_mut(service) {
                s.functions.remove(name);
                s.triggers.remove(name);
                s.configs.retain(|(_, f, _), _| f != name);
            }
        }
        self.announce(events::RegistryEvent::FunctionDeleted {
            service: service.into(),
            function: name.into(),
        });
        Ok(entry)
    }

    /// Every function (LATEST) of every service, as (service, document).
    pub fn all_functions(&self) -> Vec<(String, Map<String, Value>)> {
        self.read(|s| {
            s.services
                .iter()
                .flat_map(|(name, svc)| svc.functions.values().map(|f| (name.clone(), f.doc.clone())))
                .collect()
        })
    }

    /// The service's document (its 3.0 function shows the settings kept
    /// there).
    pub fn service_doc(&self, service: &str) -> Option<Map<String, Value>> {
        self.read(|s| s.services.get(service).map(|e| e.doc.clone()))
    }
}
