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
mod configs;
pub mod events;
mod fields;
mod functions;
pub mod names;
mod own_service;
mod reload;
mod resolve;
mod services;
mod spec;
mod triggers;
mod versions;

pub use code::{CodeDir, crc64, sha256_hex};
pub use configs::ConfigTable;
pub use fields::Fields;
pub use spec::{FunctionEntry, FunctionSpec};
pub use triggers::HttpTrigger;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Map, Value};

use crate::engine::{Engine, EngineError};
use crate::store::{RegistryChange, RegistryRows, Store, StoreError};
use crate::util::iso_now;

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
    /// (table, function, qualifier) → doc
    configs: BTreeMap<(ConfigTable, String, String), Map<String, Value>>,
}

#[derive(Debug, Clone, Default)]
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
    pub async fn load(store: Store, code: CodeDir, engine: Engine, max_code_bytes: u64) -> Result<Registry> {
        let rows = store.load_registry().await?;
        let state = build_state(&store, &code, rows, None).await?;
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

    // ---- code ----------------------------------------------------------

    // ---- versions ------------------------------------------------------

    // ---- per-function configs (shared by async-invoke and provision) ---
}

/// The registry's state from the store's rows. Functions whose documents
/// equal their entries in `previous` keep those entries (and revisions),
/// so a reload leaves unchanged functions' instances alone.
async fn build_state(store: &Store, code: &CodeDir, rows: RegistryRows, previous: Option<&State>) -> Result<State> {
    // `version` None: LATEST; Some(id): the snapshot in that version.
    let keep = |svc: &str, version: Option<u64>, name: &str, doc: Map<String, Value>| {
        let service = previous.and_then(|p| p.services.get(svc));
        let before = match version {
            None => service.and_then(|s| s.functions.get(name)),
            Some(id) => service
                .and_then(|s| s.versions.get(&id))
                .and_then(|v| v.functions.get(name)),
        };
        match before {
            Some(entry) if entry.doc == doc => Ok(entry.clone()),
            _ => FunctionEntry::new(doc),
        }
    };
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
            let entry = keep(&svc, None, &name, as_map(doc))?;
            s.functions.insert(name, entry);
        }
    }
    for (svc, id, doc, fns) in rows.versions {
        if let Some(s) = state.services.get_mut(&svc) {
            let mut functions = BTreeMap::new();
            for (name, f) in as_map(fns) {
                let entry = keep(&svc, Some(id), &name, as_map(f))?;
                functions.insert(name, entry);
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
    for (table, svc, f, q, doc) in rows.configs {
        if let Some(s) = state.services.get_mut(&svc) {
            s.configs.insert((table, f, q), as_map(doc));
        }
    }
    for (pkg, wasm, size, sum) in rows.code {
        fetch_missing_code(store, code, &pkg, &wasm).await?;
        state.code.insert(pkg, (wasm, size, sum));
    }
    Ok(state)
}

/// Brings a code row's package and wasm into this node's code dir when
/// they are not there: a node of a cluster serves code any node uploaded
/// (the shared store keeps the bytes). On the embedded store the files are
/// always there, written before their row.
async fn fetch_missing_code(store: &Store, dir: &CodeDir, package_sha: &str, wasm_sha: &str) -> Result<()> {
    for (sha, path) in [
        (wasm_sha, dir.wasm_path(wasm_sha)),
        (package_sha, dir.package_path(package_sha)),
    ] {
        if path.exists() {
            continue;
        }
        match store.code_blob(sha).await? {
            Some(bytes) => dir.put(&path, &bytes)?,
            None => tracing::warn!(sha, path = %path.display(), "code is missing here and in the store"),
        }
    }
    Ok(())
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
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
