//! Functions: their typed view, their field rules, and create, read,
//! update, delete, list, with their code.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::resolve::resolve_version;
use super::spec::{FunctionEntry, MAX_FUEL_BUDGET};
use super::{
    Fields, ListQuery, Page, Registry, RegistryError, Result, check_if_match, code, crc64, events, names, sha256_hex,
};
use crate::engine::GuestKind;
use crate::engine::outbound::AllowList;
use crate::store::RegistryChange;
use crate::util::{iso_now, now_ms};

/// Function keys wasmfc stores and returns but does not act on.
const FUNCTION_PASSTHROUGH: &[&str] = &[
    "instanceType",
    "instanceSoftConcurrency",
    "cpu",
    "diskSize",
    "gpuMemorySize",
    "caPort",
    "customContainerConfig",
    "customRuntimeConfig",
    "customDNS",
    "customHealthCheckConfig",
    "instanceLifecycleConfig",
    "layers",
];

impl Registry {
    /// Decodes, validates (compiles) and stores an uploaded package. Nothing
    /// is written unless the wasm compiles and links.
    async fn ingest_code(&self, package: Bytes, handler: &str) -> Result<(code::Package, GuestKind, bool)> {
        if package.len() as u64 > self.inner.max_code_bytes {
            return Err(RegistryError::CodeTooLarge(self.inner.max_code_bytes >> 20));
        }
        // Inflating is CPU and memory work of up to the code limit: not on
        // a serving thread, and only a few at once.
        let _slot = self
            .inner
            .unpacking
            .acquire()
            .await
            .map_err(|e| RegistryError::Engine(e.to_string()))?;
        let max = self.inner.max_code_bytes;
        let handler = handler.to_string();
        let pkg = tokio::task::spawn_blocking(move || code::unpack(package, &handler, max))
            .await
            .map_err(|e| RegistryError::Engine(e.to_string()))??;
        let wasm_sha = sha256_hex(&pkg.wasm);
        let prepared = self.inner.engine.validate(wasm_sha.clone(), pkg.wasm.clone()).await?;
        let dir = self.inner.code.clone();
        let pkg2 = pkg.clone();
        let pkg_sha = sha256_hex(&pkg.package);
        let (wasm_key, pkg_key) = (wasm_sha.clone(), pkg_sha.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            dir.put(&dir.wasm_path(&wasm_key), &pkg2.wasm)?;
            dir.put(&dir.package_path(&pkg_key), &pkg2.package)
        })
        .await
        .map_err(|e| RegistryError::Engine(e.to_string()))??;
        // Where every node can fetch them, before the code row says so.
        self.inner.store.put_code_blob(&wasm_sha, pkg.wasm.clone()).await?;
        if pkg_sha != wasm_sha {
            self.inner.store.put_code_blob(&pkg_sha, pkg.package.clone()).await?;
        }
        Ok((pkg, prepared.kind, prepared.has_initializer()))
    }

    fn decode_zip_file(&self, body: &Fields) -> Result<Option<Bytes>> {
        use base64::Engine as _;
        let Some(code) = body.object("code")? else {
            return Ok(None);
        };
        let code = Fields::from_map(code);
        if code.has("ossBucketName") || code.has("ossObjectName") {
            return Err(RegistryError::InvalidArgument(
                "OSS code locations are not supported by wasmfc; send code.zipFile".into(),
            ));
        }
        let Some(b64) = code.str("zipFile")? else {
            return Err(RegistryError::InvalidArgument("code.zipFile is required".into()));
        };
        if (b64.len() as u64) / 4 * 3 > self.inner.max_code_bytes + 3 {
            return Err(RegistryError::CodeTooLarge(self.inner.max_code_bytes >> 20));
        }
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| RegistryError::InvalidArgument(format!("code.zipFile is not valid base64: {e}")))
    }

    // ---- functions -----------------------------------------------------

    pub async fn create_function(&self, service: &str, body: &Fields) -> Result<Map<String, Value>> {
        // Known before the slow part (compiling), and checked again under
        // the lock.
        self.service_entry(service, |_| Ok(()))?;
        let new = self.prepare_function(body).await?;
        let _guard = self.inner.write_lock.lock().await;
        if self.service_entry(service, |s| Ok(s.functions.contains_key(&new.name)))? {
            return Err(RegistryError::AlreadyExists {
                kind: "function",
                name: new.name,
            });
        }
        self.store_function(service, &new.name, new.doc, new.changes, None)
            .await
    }

    /// Checks a CreateFunction body and ingests its code: everything but
    /// the write. Nothing is stored unless the code compiles.
    pub(super) async fn prepare_function(&self, body: &Fields) -> Result<NewFunction> {
        let name = body
            .str("functionName")?
            .ok_or_else(|| RegistryError::InvalidArgument("functionName is required".into()))?;
        names::function(&name)?;
        let package = self
            .decode_zip_file(body)?
            .ok_or_else(|| RegistryError::InvalidArgument("code is required".into()))?;
        if body.str("runtime")?.is_none() {
            return Err(RegistryError::InvalidArgument(
                "runtime is required (use \"wasm\")".into(),
            ));
        }
        let handler = body.str("handler")?.unwrap_or_else(|| "index.handler".into());
        let mut doc = new_function_doc(&name);
        apply_function_fields(body, &mut doc)?;
        self.check_fuel_budget(&doc)?;
        let (pkg, kind, has_init) = self.ingest_code(package, &handler).await?;
        let changes = set_code(&mut doc, &pkg, kind, has_init)?.into_iter().collect();
        Ok(NewFunction { name, doc, changes })
    }

    /// A `fuelBudget` can only be enforced by a server that meters fuel.
    fn check_fuel_budget(&self, doc: &Map<String, Value>) -> Result<()> {
        if doc.contains_key("fuelBudget") && !self.inner.engine.config().fuel_metering {
            return Err(RegistryError::InvalidArgument(
                "fuelBudget needs a server that meters fuel: start wasmfc serve with --fuel-metering".into(),
            ));
        }
        Ok(())
    }

    /// Replaces a function's settings and/or code.
    pub async fn update_function(
        &self,
        service: &str,
        name: &str,
        body: &Fields,
        if_match: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let current = self.service_entry(service, |s| {
            s.functions
                .get(name)
                .cloned()
                .ok_or_else(|| RegistryError::FunctionNotFound {
                    service: service.into(),
                    function: name.into(),
                })
        })?;
        check_if_match(&current.doc, if_match)?;
        let mut doc = current.doc.clone();
        apply_function_fields(body, &mut doc)?;
        self.check_fuel_budget(&doc)?;
        let handler = Fields::from_map(doc.clone()).str("handler")?.unwrap_or_default();
        let ingested = match self.decode_zip_file(body)? {
            Some(package) => Some(self.ingest_code(package, &handler).await?),
            None => None,
        };
        let _guard = self.inner.write_lock.lock().await;
        // Re-read under the lock: a concurrent delete must win.
        self.service_entry(service, |s| {
            s.functions
                .get(name)
                .map(|_| ())
                .ok_or_else(|| RegistryError::FunctionNotFound {
                    service: service.into(),
                    function: name.into(),
                })
        })?;
        let code_change = match ingested {
            Some((pkg, kind, has_init)) => set_code(&mut doc, &pkg, kind, has_init)?,
            None => {
                check_initializer(&doc)?;
                None
            }
        };
        self.store_function(service, name, doc, code_change.into_iter().collect(), None)
            .await
    }

    /// `PUT .../functions/{f}/code` with a raw `application/wasm` body: the
    /// curl-friendly upload. Creates the function with default settings if
    /// it does not exist, else replaces its code.
    pub async fn put_function_code(&self, service: &str, name: &str, wasm: Bytes) -> Result<Map<String, Value>> {
        names::function(name)?;
        self.service_entry(service, |_| Ok(()))?;
        let (pkg, kind, has_init) = self.ingest_code(wasm, "index.handler").await?;
        let _guard = self.inner.write_lock.lock().await;
        let existing = self.service_entry(service, |s| Ok(s.functions.get(name).cloned()))?;
        let mut doc = match existing {
            Some(e) => e.doc.clone(),
            None => new_function_doc(name),
        };
        let code_change = set_code(&mut doc, &pkg, kind, has_init)?;
        self.store_function(service, name, doc, code_change.into_iter().collect(), None)
            .await
    }

    /// Writes a function's document after `changes` (its code row, and for
    /// a function created with its own service, that service's row) in one
    /// commit, then serves it. Called under the write lock.
    pub(super) async fn store_function(
        &self,
        service: &str,
        name: &str,
        mut doc: Map<String, Value>,
        mut changes: Vec<RegistryChange>,
        new_service: Option<Map<String, Value>>,
    ) -> Result<Map<String, Value>> {
        doc.insert("lastModifiedTime".into(), json!(iso_now()));
        let entry = FunctionEntry::new(doc.clone())?;
        changes.push(RegistryChange::PutFunction {
            service: service.into(),
            name: name.into(),
            doc: Value::Object(doc.clone()),
        });
        self.persist(changes).await?;
        let mut st = self.inner.state.write();
        st.code.insert(
            entry.spec.package_sha256.clone(),
            (
                entry.spec.wasm_sha256.clone(),
                code_size(&doc),
                entry.spec.code_checksum.clone(),
            ),
        );
        if let Some(doc) = new_service {
            st.services.insert(
                service.into(),
                super::ServiceEntry {
                    doc,
                    ..Default::default()
                },
            );
        }
        let changed = events::RegistryEvent::FunctionChanged {
            service: service.into(),
            function: name.into(),
            revision: entry.revision,
        };
        if let Some(s) = st.services.get_mut(service) {
            s.functions.insert(name.into(), entry);
        }
        drop(st);
        self.announce(changed);
        Ok(doc)
    }

    pub fn get_function(&self, service: &str, qualifier: Option<&str>, name: &str) -> Result<Arc<FunctionEntry>> {
        self.service_entry(service, |s| {
            let functions = match resolve_version(service, s, qualifier.unwrap_or("LATEST"))? {
                None => &s.functions,
                Some(v) => &s.versions[&v].functions,
            };
            functions
                .get(name)
                .cloned()
                .ok_or_else(|| RegistryError::FunctionNotFound {
                    service: service.into(),
                    function: name.into(),
                })
        })
    }

    /// Deletes a function with its triggers and configs. Returns the entry
    /// so callers can release what depended on it.
    pub async fn delete_function(
        &self,
        service: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<Arc<FunctionEntry>> {
        let _guard = self.inner.write_lock.lock().await;
        let entry = self.get_function(service, None, name)?;
        check_if_match(&entry.doc, if_match)?;
        self.persist(vec![RegistryChange::DeleteFunction {
            service: service.into(),
            name: name.into(),
        }])
        .await?;
        if let Some(s) = self.inner.state.write().services.get_mut(service) {
            s.functions.remove(name);
            s.triggers.remove(name);
            s.configs.retain(|(_, f, _), _| f != name);
        }
        self.announce(events::RegistryEvent::FunctionDeleted {
            service: service.into(),
            function: name.into(),
        });
        Ok(entry)
    }

    pub fn list_functions(&self, service: &str, qualifier: Option<&str>, q: &ListQuery) -> Result<Page> {
        self.service_entry(service, |s| {
            let functions = match resolve_version(service, s, qualifier.unwrap_or("LATEST"))? {
                None => &s.functions,
                Some(v) => &s.versions[&v].functions,
            };
            q.page(functions.iter().map(|(k, v)| (k.clone(), v.doc.clone())))
        })
    }

    /// The stored package of a function: (package sha256, checksum).
    pub fn function_code(&self, service: &str, qualifier: Option<&str>, name: &str) -> Result<(String, String)> {
        let f = self.get_function(service, qualifier, name)?;
        Ok((f.spec.package_sha256.clone(), f.spec.code_checksum.clone()))
    }

    /// True when some function (or version snapshot) uses this package.
    pub fn package_known(&self, package_sha256: &str) -> bool {
        self.read(|s| s.code.contains_key(package_sha256))
    }
}

/// A checked CreateFunction: its name, its document and the code row its
/// write carries.
pub(super) struct NewFunction {
    pub name: String,
    pub doc: Map<String, Value>,
    pub changes: Vec<RegistryChange>,
}

fn new_function_doc(name: &str) -> Map<String, Value> {
    let now = iso_now();
    let mut doc = Map::new();
    doc.insert("functionId".into(), json!(uuid::Uuid::new_v4().to_string()));
    doc.insert("functionName".into(), json!(name));
    doc.insert("description".into(), json!(""));
    doc.insert("runtime".into(), json!("wasm"));
    doc.insert("handler".into(), json!("index.handler"));
    doc.insert("timeout".into(), json!(3));
    doc.insert("initializer".into(), json!(""));
    doc.insert("initializationTimeout".into(), json!(3));
    doc.insert("memorySize".into(), json!(128));
    doc.insert("instanceConcurrency".into(), json!(1));
    doc.insert("environmentVariables".into(), json!({}));
    doc.insert("createdTime".into(), json!(now));
    doc.insert("lastModifiedTime".into(), json!(now));
    doc
}

/// Applies the settings of a CreateFunction/UpdateFunction body.
fn apply_function_fields(body: &Fields, doc: &mut Map<String, Value>) -> Result<()> {
    if let Some(r) = body.str("runtime")? {
        if r != "wasm" {
            return Err(RegistryError::InvalidArgument(format!(
                "runtime '{r}' is not supported: wasmfc runs WebAssembly, use runtime \"wasm\""
            )));
        }
        doc.insert("runtime".into(), json!(r));
    }
    if let Some(h) = body.str("handler")? {
        doc.insert("handler".into(), json!(h));
    }
    if let Some(d) = body.str("description")? {
        if d.len() > 256 {
            return Err(RegistryError::InvalidArgument(
                "description is longer than 256 characters".into(),
            ));
        }
        doc.insert("description".into(), json!(d));
    }
    if let Some(t) = body.int("timeout", 1, 86_400)? {
        doc.insert("timeout".into(), json!(t));
    }
    if let Some(m) = body.int("memorySize", 1, 4096)? {
        doc.insert("memorySize".into(), json!(m));
    }
    if let Some(i) = body.str("initializer")? {
        doc.insert("initializer".into(), json!(i));
    }
    if let Some(t) = body.int("initializationTimeout", 1, 300)? {
        doc.insert("initializationTimeout".into(), json!(t));
    }
    // O's UpdateFunction spells it with a capital I.
    for key in ["instanceConcurrency", "InstanceConcurrency"] {
        if let Some(c) = body.int(key, 1, 200)? {
            doc.insert("instanceConcurrency".into(), json!(c));
        }
    }
    if let Some(env) = body.string_map("environmentVariables")? {
        let mut total = 0;
        for (k, v) in &env {
            let valid = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(RegistryError::InvalidArgument(format!(
                    "environment variable name '{k}' is invalid: use letters, digits and underscores, not starting with a digit"
                )));
            }
            total += k.len() + v.len();
        }
        if total > 4096 {
            return Err(RegistryError::InvalidArgument(
                "environmentVariables exceed 4 KB in total".into(),
            ));
        }
        doc.insert("environmentVariables".into(), json!(env));
    }
    if let Some(hosts) = body.string_list("allowedOutboundHosts")? {
        AllowList::parse(&hosts).map_err(|e| {
            RegistryError::InvalidArgument(format!(
                "allowedOutboundHosts entry {e}; entries are scheme://host[:port] (as Spin's \
                 allowed_outbound_hosts), a host name, or \"*\" for any public host"
            ))
        })?;
        doc.insert("allowedOutboundHosts".into(), json!(hosts));
    }
    if let Some(fresh) = body.bool("freshInstancePerRequest")? {
        doc.insert("freshInstancePerRequest".into(), json!(fresh));
    }
    if let Some(budget) = body.value("fuelBudget") {
        if budget.is_null() {
            doc.remove("fuelBudget");
        } else if let Some(b) = body.int("fuelBudget", 1, MAX_FUEL_BUDGET)? {
            doc.insert("fuelBudget".into(), json!(b));
        }
    }
    body.copy_into(FUNCTION_PASSTHROUGH, doc);
    Ok(())
}

/// An initializer needs a guest that exports one.
fn check_initializer(doc: &Map<String, Value>) -> Result<()> {
    let wants = doc
        .get("initializer")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let has = doc
        .get("wasmfc")
        .and_then(|w| w.get("hasInitializer"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if wants && !has {
        return Err(RegistryError::InvalidArgument(
            "initializer is set but the code exports no initializer: a component must export \
             `wasmfc:function/lifecycle` (the Rust SDK's `export_handler!(handle, init = ...)`); \
             command modules have none"
                .into(),
        ));
    }
    Ok(())
}

/// Points a function document at new code; returns the code row to store.
fn set_code(
    doc: &mut Map<String, Value>,
    pkg: &code::Package,
    kind: GuestKind,
    has_initializer: bool,
) -> Result<Option<RegistryChange>> {
    let package_sha = sha256_hex(&pkg.package);
    let wasm_sha = sha256_hex(&pkg.wasm);
    let checksum = crc64(&pkg.package).to_string();
    doc.insert("codeSize".into(), json!(pkg.package.len()));
    doc.insert("codeChecksum".into(), json!(checksum));
    doc.insert(
        "wasmfc".into(),
        json!({
            "guestKind": kind,
            "hasInitializer": has_initializer,
            "wasmSha256": wasm_sha,
            "packageSha256": package_sha,
        }),
    );
    check_initializer(doc)?;
    Ok(Some(RegistryChange::PutCode {
        package_sha256: package_sha,
        wasm_sha256: wasm_sha,
        package_size: pkg.package.len() as u64,
        checksum,
        created_ms: now_ms(),
    }))
}

fn code_size(doc: &Map<String, Value>) -> u64 {
    doc.get("codeSize").and_then(Value::as_u64).unwrap_or(0)
}
