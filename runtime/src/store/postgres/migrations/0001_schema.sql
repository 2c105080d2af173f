-- wasmfc on PostgreSQL: the embedded store's tables, plus what several
-- nodes sharing them need (code bytes in the database, node membership,
-- task and instance leases with fencing tokens). Times are Unix ms, as in
-- the SQLite store, so rows read the same from either.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Registry objects keep their FC JSON document in `doc` so fields we do
-- not interpret round-trip unchanged. `version` is bumped by every change
-- so a node can tell that its cached copy is stale.
CREATE TABLE services (
    name    TEXT PRIMARY KEY,
    doc     TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE functions (
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    doc     TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (service, name)
);

CREATE TABLE versions (
    service    TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    doc        TEXT NOT NULL,
    functions  TEXT NOT NULL,
    PRIMARY KEY (service, version_id)
);

-- Version ids are never reused, even after a delete (as FC).
CREATE TABLE version_counters (
    service TEXT PRIMARY KEY,
    last    BIGINT NOT NULL
);

CREATE TABLE aliases (
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    doc     TEXT NOT NULL,
    PRIMARY KEY (service, name)
);

CREATE TABLE triggers (
    service  TEXT NOT NULL,
    function TEXT NOT NULL,
    name     TEXT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (service, function, name)
);

CREATE TABLE async_configs (
    service   TEXT NOT NULL,
    function  TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (service, function, qualifier)
);

CREATE TABLE provision_configs (
    service   TEXT NOT NULL,
    function  TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (service, function, qualifier)
);

CREATE TABLE concurrency_configs (
    service   TEXT NOT NULL,
    function  TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (service, function, qualifier)
);

-- Content-addressed code. Unlike the embedded store (files under code/),
-- the package itself lives here: every node can fetch what any node
-- uploaded, and keeps its compiled artifacts on its own disk. As on disk,
-- the bytes are written first and the `code` row records that they are
-- complete.
CREATE TABLE code_packages (
    package_sha256 TEXT PRIMARY KEY,
    package        BYTEA NOT NULL
);

CREATE TABLE code (
    package_sha256 TEXT PRIMARY KEY,
    wasm_sha256    TEXT NOT NULL,
    package_size   BIGINT NOT NULL,
    checksum       TEXT NOT NULL,
    created_ms     BIGINT NOT NULL
);

-- Node membership: a row per node, its heartbeat renewed while it lives.
-- A node whose heartbeat is older than one lease period is dead: its task
-- and instance leases may be taken over.
CREATE TABLE nodes (
    node_id        TEXT PRIMARY KEY,
    address        TEXT NOT NULL,
    started_ms     BIGINT NOT NULL,
    heartbeat_ms   BIGINT NOT NULL,
    tasks_running  BIGINT NOT NULL DEFAULT 0,
    instances      BIGINT NOT NULL DEFAULT 0
);

-- Tasks. `queue` partitions the due-task scan (a hash of service and
-- function) so nodes claiming work do not all contend for one row set.
-- A claim sets `lease_owner`, `lease_until_ms` and a fresh `lease_token`
-- (from the sequence): a completion is applied only while its token is
-- the row's, so a node that lost its lease cannot end the task a second
-- time.
CREATE SEQUENCE lease_tokens;

CREATE TABLE tasks (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service            TEXT NOT NULL,
    function           TEXT NOT NULL,
    qualifier          TEXT NOT NULL,
    invocation_id      TEXT NOT NULL,
    stateful           BOOLEAN NOT NULL,
    kind               TEXT NOT NULL DEFAULT 'event',
    status             TEXT NOT NULL,
    payload            BYTEA NOT NULL,
    request_id         TEXT NOT NULL,
    created_ms         BIGINT NOT NULL,
    end_ms             BIGINT NOT NULL DEFAULT 0,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_run_ms        BIGINT NOT NULL DEFAULT 0,
    error              TEXT NOT NULL DEFAULT '',
    result             BYTEA,
    destination_status TEXT NOT NULL DEFAULT '',
    instance_id        TEXT NOT NULL DEFAULT '',
    duration_ms        BIGINT NOT NULL DEFAULT 0,
    logs               BYTEA,
    events             INTEGER NOT NULL DEFAULT 0,
    fuel_consumed      BIGINT,
    queue              SMALLINT NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_until_ms     BIGINT NOT NULL DEFAULT 0,
    lease_token        BIGINT NOT NULL DEFAULT 0,
    UNIQUE (service, function, invocation_id)
);

CREATE INDEX tasks_by_time ON tasks (service, function, created_ms, seq);
CREATE INDEX tasks_unfinished ON tasks (seq) WHERE end_ms = 0;
CREATE INDEX tasks_ended ON tasks (end_ms) WHERE end_ms > 0;
CREATE INDEX tasks_finished_by_status ON tasks (service, function, status, stateful, created_ms, seq) WHERE end_ms > 0;
CREATE INDEX tasks_by_id_time ON tasks (service, function, invocation_id, created_ms, stateful);
-- The claim scan: unclaimed or lease-expired unfinished tasks of a queue,
-- the earliest due first.
CREATE INDEX tasks_due ON tasks (queue, next_run_ms, seq) WHERE end_ms = 0;
-- Lease expiry: the running tasks whose leases may have lapsed.
CREATE INDEX tasks_leased ON tasks (lease_until_ms) WHERE end_ms = 0 AND lease_owner IS NOT NULL;

CREATE TABLE task_events (
    task_seq   BIGINT NOT NULL,
    event_id   INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    ts_ms      BIGINT NOT NULL,
    detail     TEXT NOT NULL,
    PRIMARY KEY (task_seq, event_id)
);

-- Orchestration instances. A replay runs on the node holding the
-- instance's lease, fenced like a task's.
CREATE TABLE orchestrations (
    rid            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id    TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    service        TEXT NOT NULL,
    function       TEXT NOT NULL,
    wasm_sha256    TEXT NOT NULL,
    memory_mb      INTEGER NOT NULL,
    timeout_s      INTEGER NOT NULL,
    version        TEXT NOT NULL DEFAULT '',
    generation     INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL,
    input          TEXT,
    output         TEXT,
    custom_status  TEXT,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL,
    next_seq       BIGINT NOT NULL DEFAULT 0,
    pending        BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner    TEXT,
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    lease_token    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX orchestrations_by_created ON orchestrations (created_ms, instance_id);
CREATE INDEX orchestrations_pending ON orchestrations (rid) WHERE pending;

CREATE TABLE orchestration_history (
    rid        BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    ts_ms      BIGINT NOT NULL,
    step       BIGINT,
    body       TEXT NOT NULL,
    PRIMARY KEY (rid, seq)
);

-- Durable timers not yet fired. Firing deletes the row in the transaction
-- that records the event, so a timer fires once cluster-wide.
CREATE TABLE orchestration_timers (
    rid        BIGINT NOT NULL,
    generation INTEGER NOT NULL,
    step       BIGINT NOT NULL,
    fire_ms    BIGINT NOT NULL,
    PRIMARY KEY (rid, generation, step)
);
CREATE INDEX orchestration_timers_due ON orchestration_timers (fire_ms);
