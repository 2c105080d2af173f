//! What registry persistence takes and answers, on either store: the
//! row-level changes the registry writes through, and every row it loads.
//!
//! The registry keeps everything in memory and writes through; a change is a
//! list of [`RegistryChange`]s applied in one transaction, so a multi-row
//! change (deleting a service and all it holds) is all-or-nothing.

use serde_json::Value;

/// Every registry row, as loaded at startup.
#[derive(Debug, Default)]
pub struct RegistryRows {
    pub services: Vec<(String, Value)>,
    pub functions: Vec<(String, String, Value)>,
    /// (service, version id, version doc, function snapshots)
    pub versions: Vec<(String, u64, Value, Value)>,
    pub version_counters: Vec<(String, u64)>,
    pub aliases: Vec<(String, String, Value)>,
    pub triggers: Vec<(String, String, String, Value)>,
    /// (table, service, function, qualifier, doc)
    pub configs: Vec<(ConfigTable, String, String, String, Value)>,
    /// package sha256 → (wasm sha256, package size, checksum)
    pub code: Vec<(String, String, u64, String)>,
}

/// The per-function config tables, one row per (service, function,
/// qualifier). Concurrency configs are per function only: their qualifier
/// is always `LATEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigTable {
    AsyncInvoke,
    Provision,
    Concurrency,
}

impl ConfigTable {
    pub const ALL: [ConfigTable; 3] = [
        ConfigTable::AsyncInvoke,
        ConfigTable::Provision,
        ConfigTable::Concurrency,
    ];

    pub(crate) fn sql_table(self) -> &'static str {
        match self {
            ConfigTable::AsyncInvoke => "async_configs",
            ConfigTable::Provision => "provision_configs",
            ConfigTable::Concurrency => "concurrency_configs",
        }
    }
}

/// One row-level change to the registry.
#[derive(Debug, Clone)]
pub enum RegistryChange {
    PutService {
        name: String,
        doc: Value,
    },
    /// Removes the service and everything under it (functions, versions,
    /// aliases, triggers, configs).
    DeleteService {
        name: String,
    },
    PutFunction {
        service: String,
        name: String,
        doc: Value,
    },
    /// Removes the function with its triggers and configs.
    DeleteFunction {
        service: String,
        name: String,
    },
    PutVersion {
        service: String,
        version_id: u64,
        doc: Value,
        functions: Value,
    },
    DeleteVersion {
        service: String,
        version_id: u64,
    },
    SetVersionCounter {
        service: String,
        last: u64,
    },
    PutAlias {
        service: String,
        name: String,
        doc: Value,
    },
    DeleteAlias {
        service: String,
        name: String,
    },
    PutTrigger {
        service: String,
        function: String,
        name: String,
        doc: Value,
    },
    DeleteTrigger {
        service: String,
        function: String,
        name: String,
    },
    PutConfig {
        table: ConfigTable,
        service: String,
        function: String,
        qualifier: String,
        doc: Value,
    },
    DeleteConfig {
        table: ConfigTable,
        service: String,
        function: String,
        qualifier: String,
    },
    PutCode {
        package_sha256: String,
        wasm_sha256: String,
        package_size: u64,
        checksum: String,
        created_ms: i64,
    },
}
