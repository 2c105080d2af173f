//! The registry: services, functions, versions, aliases, triggers and the
//! per-function configs, plus the uploaded code.
//!
//! Everything lives in memory (a read lock answers lookups on the invoke
//! path) and is written through to the store; mutations are serialised by
//! one async lock, persisted, and only then applied to memory, so memory
//! never shows something the store does not hold.
//!
//! Objects are kept as their FC JSON documents so fields wasmfc does not
//! interpret (`vpcConfig`, `logConfig`, `cpu`, ...) round-trip unchanged; the
//! few fields the runtime acts on are parsed once into a typed view
//! ([`FunctionSpec`]) when the document is stored.

mod code;
pub mod events;
mod fields;
pub mod names;
mod triggers;

pub use code::{CodeDir, crc64, sha256_hex};
pub use fields::Fields;
pub use triggers::HttpTrigger;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{Map, Value, json};

use crate::engine::outbound::AllowList;
use crate::engine::{Engine, EngineError, GuestKind};
use crate::store::{RegistryChange, Store, StoreError};
use crate::util::{iso_now, now_ms};

/// Errors at the registry boundary. The API maps each to FC's status and
/// `ErrorCode`.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("service '{0}' does not exist")]
    ServiceNotFound(String),
    #[error("function '{function}' does not exist in service '{service}'")]
    FunctionNotFound { service: String, function: String },
    #[error("version '{version}' does not exist in service '{service}'")]
    VersionNotFound { service: String, version: String },
    #[error("alias '{alias}' does not exist in service '{service}'")]
    AliasNotFound { service: String, alias: String },
    #[error("trigger '{trigger}' does not exist in function '{function}'")]
    TriggerNotFound { function: String, trigger: String },
    #[error("{0}")]
    ConfigNotFound(String),
    #[error("{kind} '{name}' already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error(
        "function '{function}' already has the HTTP trigger '{existing}': a function has one HTTP trigger \
         (update or delete that one)"
    )]
    HttpTriggerExists { function: String, existing: String },
    #[error("{0}")]
    NotEmpty(String),
    #[error("the If-Match etag does not match the current one")]
    PreconditionFailed,
    #[error("code package is larger than the {0} MB limit")]
    CodeTooLarge(u64),
    #[error("{name} inflates to more than the {limit_mb} MB code limit")]
    UnpackedCodeTooLarge { name: String, limit_mb: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("code storage failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("engine failed: {0}")]
    Engine(String),
}

impl From<EngineError> for RegistryError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidCode(msg) => RegistryError::InvalidArgument(msg),
            other => RegistryError::Engine(other.to_string()),
        }
    }
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// An FC resource object, as its JSON document.
pub type Doc = Map<String, Value>;
/// One page of a list operation: the items and the next page's token.
pub type Page = (Vec<Doc>, Option<String>);

/// The typed view of a function document: what the runtime acts on.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub function_id: String,
    pub timeout_s: u64,
    pub memory_mb: u64,
    pub env: Vec<(String, String)>,
    /// Run the guest's initializer on instance creation.
    pub initializer: bool,
    pub initialization_timeout_s: u64,
    pub instance_concurrency: u32,
    pub code_checksum: String,
    pub wasm_sha256: String,
    pub package_sha256: String,
    pub kind: GuestKind,
    pub last_modified: String,
    /// Where an HTTP function may send requests (`allowedOutboundHosts`, a
    /// wasmfc extension); empty: no outgoing HTTP.
    pub allowed_outbound_hosts: AllowList,
    /// The most fuel one invocation may consume (`fuelBudget`, a wasmfc
    /// extension); needs a server with `--fuel-metering`.
    pub fuel_budget: Option<u64>,
}

impl FunctionSpec {
    fn from_doc(doc: &Map<String, Value>) -> Result<FunctionSpec> {
        let f = Fields::from_map(doc.clone());
        let ext = f.object("wasmfc")?.unwrap_or_default();
        let ext = Fields::from_map(ext);
        let kind: GuestKind = serde_json::from_value(ext.value("guestKind").cloned().unwrap_or(Value::Null))
            .map_err(|e| RegistryError::InvalidArgument(format!("stored function lacks a guest kind: {e}")))?;
        Ok(FunctionSpec {
            name: f.str("functionName")?.unwrap_or_default(),
            function_id: f.str("functionId")?.unwrap_or_default(),
            timeout_s: f.int("timeout", 1, 86_400)?.unwrap_or(3) as u64,
            memory_mb: f.int("memorySize", 1, 4096)?.unwrap_or(128) as u64,
            env: f
                .string_map("environmentVariables")?
                .unwrap_or_default()
                .into_iter()
                .collect(),
            initializer: f.str("initializer")?.is_some_and(|s| !s.is_empty()),
            initialization_timeout_s: f.int("initializationTimeout", 1, 300)?.unwrap_or(3) as u64,
            instance_concurrency: f.int("instanceConcurrency", 1, 200)?.unwrap_or(1) as u32,
            code_checksum: f.str("codeChecksum")?.unwrap_or_default(),
            wasm_sha256: ext.str("wasmSha256")?.unwrap_or_default(),
            package_sha256: ext.str("packageSha256")?.unwrap_or_default(),
            kind,
            last_modified: f.str("lastModifiedTime")?.unwrap_or_default(),
            allowed_outbound_hosts: AllowList::parse(&f.string_list("allowedOutboundHosts")?.unwrap_or_default())
                .map_err(|e| RegistryError::InvalidArgument(format!("allowedOutboundHosts entry {e}")))?,
            fuel_budget: f.int("fuelBudget", 1, MAX_FUEL_BUDGET)?.map(|b| b as u64),
        })
    }
}

/// A function document with its typed view.
#[derive(Debug, Clone)]
pub struct FunctionEntry {
    pub doc: Map<String, Value>,
    pub spec: FunctionSpec,
}

impl FunctionEntry {
    fn new(doc: Map<String, Value>) -> Result<Arc<FunctionEntry>> {
        let spec = FunctionSpec::from_doc(&doc)?;
        Ok(Arc::new(FunctionEntry { doc, spec }))
    }
}

#[derive(Debug, Clone)]
struct Version {
    doc: Map<String, Value>,
    functions: BTreeMap<String, Arc<FunctionEntry>>,
}

#[derive(Debug, Clone, Default)]
struct ServiceEntry {
    doc: Map<String, Value>,
    functions: BTreeMap<String, Arc<FunctionEntry>>,
    versions: BTreeMap<u64, Version>,
    last_version: u64,
    aliases: BTreeMap<String, Map<String, Value>>,
    /// function → trigger name → doc
    triggers: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// (function, qualifier) → doc
    async_configs: BTreeMap<(String, String), Map<String, Value>>,
    provision_configs: BTreeMap<(String, String), Map<String, Value>>,
}

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<String, ServiceEntry>,
    /// package sha256 → (wasm sha256, size, checksum)
    code: BTreeMap<String, (String, u64, String)>,
}

/// A function as an invocation sees it, after qualifier resolution.
#[derive(Debug, Clone)]
pub struct ResolvedFunction {
    pub service: String,
    pub function: Arc<FunctionEntry>,
    /// The qualifier the caller used (`LATEST` when none).
    pub qualifier: String,
    /// The version it resolved to; `None` for LATEST.
    pub version: Option<u64>,
}

impl ResolvedFunction {
    pub fn version_label(&self) -> String {
        self.version.map_or_else(|| "LATEST".to_string(), |v| v.to_string())
    }

    /// What an invocation of this function names.
    pub fn target(&self) -> crate::engine::Target {
        crate::engine::Target {
            service: self.service.clone(),
            function: self.function.spec.name.clone(),
            qualifier: self.qualifier.clone(),
            version_id: self.version_label(),
        }
    }
}

/// Paging parameters shared by the list operations.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: Option<String>,
    pub start_key: Option<String>,
    pub next_token: Option<String>,
    pub limit: Option<i64>,
}

impl ListQuery {
    const DEFAULT_LIMIT: usize = 100;
    const MAX_LIMIT: usize = 1000;

    fn limit(&self) -> Result<usize> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if n >= 1 && n as usize <= Self::MAX_LIMIT => Ok(n as usize),
            Some(n) => Err(RegistryError::InvalidArgument(format!(
                "limit must be between 1 and {}, got {n}",
                Self::MAX_LIMIT
            ))),
        }
    }

    /// Pages over `(key, item)` pairs sorted by key; `nextToken` is the key
    /// of the first item of the next page.
    pub fn page<T>(&self, items: impl Iterator<Item = (String, T)>) -> Result<(Vec<T>, Option<String>)> {
        let limit = self.limit()?;
        let start = match (&self.start_key, &self.next_token) {
            (Some(a), Some(b)) => Some(a.max(b).clone()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let mut out = Vec::new();
        let mut next = None;
        for (key, item) in items {
            if let Some(p) = &self.prefix
                && !key.starts_with(p.as_str())
            {
                continue;
            }
            if let Some(s) = &start
                && key.as_str() < s.as_str()
            {
                continue;
            }
            if out.len() == limit {
                next = Some(key);
                break;
            }
            out.push(item);
        }
        Ok((out, next))
    }
}

/// How a qualifier names a function's configuration.
enum Qualifier<'a> {
    Latest,
    Version(u64),
    Alias(&'a str),
}

fn parse_qualifier(q: Option<&str>) -> Qualifier<'_> {
    match q {
        None | Some("") | Some("LATEST") => Qualifier::Latest,
        Some(q) if q.bytes().all(|b| b.is_ascii_digit()) => q.parse().map_or(Qualifier::Alias(q), Qualifier::Version),
        Some(q) => Qualifier::Alias(q),
    }
}

/// An object's ETag: a digest of its document.
pub fn etag(doc: &Map<String, Value>) -> String {
    sha256_hex(Value::Object(doc.clone()).to_string().as_bytes())[..32].to_string()
}

fn check_if_match(doc: &Map<String, Value>, if_match: Option<&str>) -> Result<()> {
    match if_match {
        Some(tag) if !tag.is_empty() && tag.trim_matches('"') != etag(doc) => Err(RegistryError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// Service keys passed through as given.
const SERVICE_PASSTHROUGH: &[&str] = &[
    "role",
    "logConfig",
    "vpcConfig",
    "nasConfig",
    "ossMountConfig",
    "tracingConfig",
];

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

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    write_lock: tokio::sync::Mutex<()>,
    store: Store,
    code: CodeDir,
    engine: Engine,
    max_code_bytes: u64,
    /// Uploads being inflated at once (each may take up to the code limit
    /// in memory): one per core.
    unpacking: tokio::sync::Semaphore,
    events: tokio::sync::broadcast::Sender<events::RegistryEvent>,
}

impl Registry {
    /// Loads the registry from the store.
    pub fn load(store: Store, code: CodeDir, engine: Engine, max_code_bytes: u64) -> Result<Registry> {
        let rows = store.load_registry()?;
        let mut state = State::default();
        for (name, doc) in rows.services {
            state.services.insert(
                name,
                ServiceEntry {
                    doc: as_map(doc),
                    ..Default::default()
                },
            );
        }
        for (svc, name, doc) in rows.functions {
            if let Some(s) = state.services.get_mut(&svc) {
                s.functions.insert(name, FunctionEntry::new(as_map(doc))?);
            }
        }
        for (svc, id, doc, fns) in rows.versions {
            if let Some(s) = state.services.get_mut(&svc) {
                let mut functions = BTreeMap::new();
                for (name, f) in as_map(fns) {
                    functions.insert(name, FunctionEntry::new(as_map(f))?);
                }
                s.versions.insert(
                    id,
                    Version {
                        doc: as_map(doc),
                        functions,
                    },
                );
            }
        }
        for (svc, last) in rows.version_counters {
            if let Some(s) = state.services.get_mut(&svc) {
                s.last_version = last;
            }
        }
        for (svc, name, doc) in rows.aliases {
            if let Some(s) = state.services.get_mut(&svc) {
                s.aliases.insert(name, as_map(doc));
            }
        }
        for (svc, f, name, doc) in rows.triggers {
            if let Some(s) = state.services.get_mut(&svc) {
                s.triggers.entry(f).or_default().insert(name, as_map(doc));
            }
        }
        for (svc, f, q, doc) in rows.async_configs {
            if let Some(s) = state.services.get_mut(&svc) {
                s.async_configs.insert((f, q), as_map(doc));
            }
        }
        for (svc, f, q, doc) in rows.provision_configs {
            if let Some(s) = state.services.get_mut(&svc) {
                s.provision_configs.insert((f, q), as_map(doc));
            }
        }
        for (pkg, wasm, size, sum) in rows.code {
            state.code.insert(pkg, (wasm, size, sum));
        }
        Ok(Registry {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                write_lock: tokio::sync::Mutex::new(()),
                store,
                code,
                engine,
                max_code_bytes,
                unpacking: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
                events: events::channel(),
            }),
        })
    }

    /// Announcements of persisted changes, from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<events::RegistryEvent> {
        self.inner.events.subscribe()
    }

    fn announce(&self, event: events::RegistryEvent) {
        // No subscriber (a registry in a test) is not an error.
        let _ = self.inner.events.send(event);
    }

    pub fn code_dir(&self) -> &CodeDir {
        &self.inner.code
    }

    async fn persist(&self, changes: Vec<RegistryChange>) -> Result<()> {
        self.inner.store.apply_registry(changes).await?;
        Ok(())
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.inner.state.read())
    }

    fn service_entry<R>(&self, service: &str, f: impl FnOnce(&ServiceEntry) -> Result<R>) -> Result<R> {
        self.read(|s| match s.services.get(service) {
            Some(e) => f(e),
            None => Err(RegistryError::ServiceNotFound(service.to_string())),
        })
    }

    // ---- services ----------------------------------------------------

    pub async fn create_service(&self, body: &Fields) -> Result<Map<String, Value>> {
        let name = body
            .str("serviceName")?
            .ok_or_else(|| RegistryError::InvalidArgument("serviceName is required".into()))?;
        names::service(&name)?;
        let _guard = self.inner.write_lock.lock().await;
        if self.read(|s| s.services.contains_key(&name)) {
            return Err(RegistryError::AlreadyExists { kind: "service", name });
        }
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

    // ---- code ----------------------------------------------------------

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
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            dir.put(&dir.wasm_path(&wasm_sha), &pkg2.wasm)?;
            dir.put(&dir.package_path(&pkg_sha), &pkg2.package)
        })
        .await
        .map_err(|e| RegistryError::Engine(e.to_string()))??;
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
        let name = body
            .str("functionName")?
            .ok_or_else(|| RegistryError::InvalidArgument("functionName is required".into()))?;
        names::function(&name)?;
        let package = self
            .decode_zip_file(body)?
            .ok_or_else(|| RegistryError::InvalidArgument("code is required".into()))?;
        self.service_entry(service, |_| Ok(()))?;
        if body.str("runtime")?.is_none() {
            return Err(RegistryError::InvalidArgument(
                "runtime is required (use \"wasm\")".into(),
            ));
        }
        let handler = body.str("handler")?.unwrap_or_else(|| "index.handler".into());
        let mut doc = new_function_doc(&name);
        apply_function_fields(body, &mut doc)?;
        self.check_fuel_budget(&doc)?;
        // Compile before taking the write lock: validation is the slow part.
        let (pkg, kind, has_init) = self.ingest_code(package, &handler).await?;
        let _guard = self.inner.write_lock.lock().await;
        if self.service_entry(service, |s| Ok(s.functions.contains_key(&name)))? {
            return Err(RegistryError::AlreadyExists { kind: "function", name });
        }
        let code_change = set_code(&mut doc, &pkg, kind, has_init)?;
        self.store_function(service, &name, doc, code_change).await
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
        self.store_function(service, name, doc, code_change).await
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
        self.store_function(service, name, doc, code_change).await
    }

    async fn store_function(
        &self,
        service: &str,
        name: &str,
        mut doc: Map<String, Value>,
        code_change: Option<RegistryChange>,
    ) -> Result<Map<String, Value>> {
        doc.insert("lastModifiedTime".into(), json!(iso_now()));
        let entry = FunctionEntry::new(doc.clone())?;
        let mut changes: Vec<RegistryChange> = code_change.into_iter().collect();
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
        if let Some(s) = st.services.get_mut(service) {
            s.functions.insert(name.into(), entry);
        }
        drop(st);
        self.announce(events::RegistryEvent::FunctionChanged {
            service: service.into(),
            function: name.into(),
        });
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
            s.async_configs.retain(|(f, _), _| f != name);
            s.provision_configs.retain(|(f, _), _| f != name);
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

    // ---- versions ------------------------------------------------------

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

    // ---- per-function configs (shared by async-invoke and provision) ---

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

/// Which per-function config table an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigTable {
    AsyncInvoke,
    Provision,
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn code_size(doc: &Map<String, Value>) -> u64 {
    doc.get("codeSize").and_then(Value::as_u64).unwrap_or(0)
}

/// The version a qualifier names in a service (`None` = LATEST). Unknown
/// versions and aliases are errors.
fn resolve_version(service: &str, s: &ServiceEntry, qualifier: &str) -> Result<Option<u64>> {
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
fn alias_versions(alias: &Map<String, Value>) -> Vec<u64> {
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

/// The largest `fuelBudget`: 10^15 units, days of CPU, so that a budget
/// is always a real bound.
const MAX_FUEL_BUDGET: i64 = 1_000_000_000_000_000;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_walks_keys_with_prefix_and_tokens() {
        let items = || (0..7).map(|i| (format!("k{i}"), i));
        let q = ListQuery {
            limit: Some(3),
            ..Default::default()
        };
        let (p1, n1) = q.page(items()).unwrap();
        assert_eq!(p1, vec![0, 1, 2]);
        let q2 = ListQuery {
            limit: Some(3),
            next_token: n1,
            ..Default::default()
        };
        let (p2, _) = q2.page(items()).unwrap();
        assert_eq!(p2, vec![3, 4, 5]);
        let q3 = ListQuery {
            prefix: Some("k6".into()),
            ..Default::default()
        };
        assert_eq!(q3.page(items()).unwrap().0, vec![6]);
        let bad = ListQuery {
            limit: Some(0),
            ..Default::default()
        };
        assert!(bad.page(items()).is_err());
    }

    #[test]
    fn qualifiers_parse() {
        assert!(matches!(parse_qualifier(None), Qualifier::Latest));
        assert!(matches!(parse_qualifier(Some("LATEST")), Qualifier::Latest));
        assert!(matches!(parse_qualifier(Some("12")), Qualifier::Version(12)));
        assert!(matches!(parse_qualifier(Some("prod")), Qualifier::Alias("prod")));
    }
}

/// List paging over generated key sets.
#[cfg(test)]
mod paging_properties {
    use proptest::prelude::*;

    use super::ListQuery;

    proptest! {
        /// Following nextToken with any page size visits every key once, in order.
        #[test]
        fn pages_cover_every_key_once(keys in proptest::collection::btree_set("[a-z]{1,6}", 0..60), limit in 1i64..20) {
            let keys: Vec<String> = keys.into_iter().collect();
            let mut seen = Vec::new();
            let mut token = None;
            loop {
                let q = ListQuery { next_token: token.clone(), limit: Some(limit), ..ListQuery::default() };
                let (page, next) = q.page(keys.iter().map(|k| (k.clone(), k.clone()))).unwrap();
                prop_assert!(page.len() as i64 <= limit);
                seen.extend(page);
                match next {
                    Some(n) => token = Some(n),
                    None => break,
                }
            }
            prop_assert_eq!(seen, keys);
        }

        #[test]
        fn a_limit_out_of_range_is_refused(limit in prop_oneof![i64::MIN..1, 1001i64..i64::MAX]) {
            let q = ListQuery { limit: Some(limit), ..ListQuery::default() };
            prop_assert!(q.page(std::iter::empty::<(String, ())>()).is_err());
        }
    }
}
