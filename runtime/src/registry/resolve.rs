//! Resolving `service[.qualifier]/function` to the function an invocation
//! runs: LATEST, a version, or an alias (with its weights).

use serde_json::{Map, Value};

use super::{Qualifier, Registry, RegistryError, ResolvedFunction, Result, ServiceEntry, parse_qualifier};

impl Registry {
    /// Resolves `service[.qualifier]/function` for an invocation. An alias
    /// with `additionalVersionWeight` picks a version by weight.
    pub fn resolve(&self, service: &str, qualifier: Option<&str>, name: &str) -> Result<ResolvedFunction> {
        self.resolve_as(service, qualifier, name, true)
    }

    /// Resolves like [`Registry::resolve`], but an alias always to its main
    /// version: what provisioned instances are kept for, so that weights
    /// never move them from one version to another between two passes.
    pub fn resolve_main(&self, service: &str, qualifier: Option<&str>, name: &str) -> Result<ResolvedFunction> {
        self.resolve_as(service, qualifier, name, false)
    }

    fn resolve_as(
        &self,
        service: &str,
        qualifier: Option<&str>,
        name: &str,
        weighted: bool,
    ) -> Result<ResolvedFunction> {
        let qualifier_label = qualifier.filter(|q| !q.is_empty()).unwrap_or("LATEST").to_string();
        self.service_entry(service, |s| {
            let version = resolve_version(service, s, &qualifier_label)?;
            let version = match (version, parse_qualifier(Some(&qualifier_label))) {
                (Some(v), Qualifier::Alias(alias)) if weighted => pick_weighted(s, alias, v),
                (v, _) => v,
            };
            let function = match version {
                None => s.functions.get(name),
                Some(v) => s.versions.get(&v).and_then(|v| v.functions.get(name)),
            }
            .cloned()
            .ok_or_else(|| RegistryError::FunctionNotFound {
                service: service.into(),
                function: name.into(),
            })?;
            Ok(ResolvedFunction {
                service: service.into(),
                function,
                qualifier: qualifier_label.clone(),
                version,
            })
        })
    }

    /// The LATEST function named `name` in every service that has one
    /// (orchestrators are started by function name alone).
    pub fn find_functions_named(&self, name: &str) -> Vec<ResolvedFunction> {
        let state = self.inner.state.read();
        state
            .services
            .iter()
            .filter_map(|(service, s)| {
                s.functions.get(name).map(|f| ResolvedFunction {
                    service: service.clone(),
                    function: f.clone(),
                    qualifier: "LATEST".into(),
                    version: None,
                })
            })
            .collect()
    }
}

/// The version a qualifier names in a service (`None` = LATEST). Unknown
/// versions and aliases are errors.
pub(super) fn resolve_version(service: &str, s: &ServiceEntry, qualifier: &str) -> Result<Option<u64>> {
    match parse_qualifier(Some(qualifier)) {
        Qualifier::Latest => Ok(None),
        Qualifier::Version(v) => {
            if s.versions.contains_key(&v) {
                Ok(Some(v))
            } else {
                Err(RegistryError::VersionNotFound {
                    service: service.into(),
                    version: qualifier.into(),
                })
            }
        }
        Qualifier::Alias(a) => {
            let alias = s.aliases.get(a).ok_or_else(|| RegistryError::AliasNotFound {
                service: service.into(),
                alias: a.into(),
            })?;
            let v = alias
                .get("versionId")
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok())
                .filter(|v| s.versions.contains_key(v))
                .ok_or_else(|| RegistryError::VersionNotFound {
                    service: service.into(),
                    version: format!("{:?}", alias.get("versionId")),
                })?;
            Ok(Some(v))
        }
    }
}

/// Every version an alias routes to.
pub(super) fn alias_versions(alias: &Map<String, Value>) -> Vec<u64> {
    let mut out: Vec<u64> = alias
        .get("versionId")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .into_iter()
        .collect();
    if let Some(Value::Object(w)) = alias.get("additionalVersionWeight") {
        out.extend(w.keys().filter_map(|k| k.parse::<u64>().ok()));
    }
    out
}

/// Picks the version an aliased invocation runs: each additional version
/// with its weight, the main version with the rest.
fn pick_weighted(s: &ServiceEntry, alias: &str, main: u64) -> Option<u64> {
    let Some(Value::Object(weights)) = s.aliases.get(alias).and_then(|a| a.get("additionalVersionWeight")) else {
        return Some(main);
    };
    let mut roll: f64 = rand::random();
    for (v, w) in weights {
        let w = w.as_f64().unwrap_or(0.0);
        if roll < w {
            return v.parse().ok().filter(|v| s.versions.contains_key(v)).or(Some(main));
        }
        roll -= w;
    }
    Some(main)
}
