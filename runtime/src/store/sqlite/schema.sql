-- wasmfc embedded store. One file, WAL mode, one writer thread.
-- Registry objects keep their FC JSON document in `doc` so fields we do not
-- interpret (vpcConfig, logConfig, ...) round-trip unchanged.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS functions (
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    doc     TEXT NOT NULL,
    PRIMARY KEY (service, name)
);

-- A published version: the version object plus a snapshot of every function
-- of the service at publish time.
CREATE TABLE IF NOT EXISTS versions (
    service    TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    functions  TEXT NOT NULL,
    PRIMARY KEY (service, version_id)
);

-- Version ids are never reused, even after a delete (as FC).
CREATE TABLE IF NOT EXISTS version_counters (
    service TEXT PRIMARY KEY,
    last    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS aliases (
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    doc     TEXT NOT NULL,
    PRIMARY KEY (service, name)
);

CREATE TABLE IF NOT EXISTS triggers (
    service  TEXT NOT NULL,
    function TEXT NOT NULL,
    name     TEXT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (service, function, name)
);

CREATE TABLE IF NOT EXISTS async_configs (
    service   TEXT NOT NULL,
    function  TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (service, function, qualifier)
);

CREATE TABLE IF NOT EXISTS provision_configs (
    service   TEXT NOT NULL,
    function  TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (service, function, qualifier)
);

-- Reserved concurrency (FC 3.0's PutConcurrencyConfig), per function: the
-- qualifier is always LATEST.
CREATE TABLE IF NOT EXISTS concurrency_configs (
    service   TEXT NOT NULL,
    function  TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (service, function, qualifier)
);

-- Content-addressed code: the uploaded package and the wasm inside it live
-- on disk under code/; this row records that both were written completely.
CREATE TABLE IF NOT EXISTS code (
    package_sha256 TEXT PRIMARY KEY,
    wasm_sha256    TEXT NOT NULL,
    package_size   INTEGER NOT NULL,
    checksum       TEXT NOT NULL,
    created_ms     INTEGER NOT NULL
);
