//! The typed view of a function document: the few fields the runtime acts
//! on, parsed once when the document is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::{Fields, RegistryError, Result};
use crate::engine::GuestKind;
use crate::engine::outbound::AllowList;

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
    /// Serve every request of an HTTP function on a new instance
    /// (`freshInstancePerRequest`, a wasmfc extension); by default an
    /// instance that answered successfully serves the next request.
    pub fresh_instance_per_request: bool,
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
            fresh_instance_per_request: f.bool("freshInstancePerRequest")?.unwrap_or(false),
        })
    }
}

/// A function document with its typed view.
#[derive(Debug, Clone)]
pub struct FunctionEntry {
    pub doc: Map<String, Value>,
    pub spec: FunctionSpec,
    /// Unique to this document in this process: every stored change makes
    /// a new entry with a new revision. The pool keys instances by it, so
    /// instances never outlive the code and settings they were made with —
    /// not even when two changes fall in the same second of
    /// `lastModifiedTime`.
    pub revision: u64,
}

/// The next [`FunctionEntry::revision`].
static NEXT_REVISION: AtomicU64 = AtomicU64::new(1);

impl FunctionEntry {
    pub(super) fn new(doc: Map<String, Value>) -> Result<Arc<FunctionEntry>> {
        let spec = FunctionSpec::from_doc(&doc)?;
        let revision = NEXT_REVISION.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(FunctionEntry { doc, spec, revision }))
    }
}

/// The largest `fuelBudget`: 10^15 units, days of CPU, so that a budget
/// is always a real bound.
pub(super) const MAX_FUEL_BUDGET: i64 = 1_000_000_000_000_000;
