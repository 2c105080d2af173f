-- Orchestration instances (the Durable Functions instance API). `rid`
-- never repeats (AUTOINCREMENT), so ids derived from it (activity task ids)
-- stay unique across purges.
CREATE TABLE IF NOT EXISTS orchestrations (
    rid           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id   TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    service       TEXT NOT NULL,
    function      TEXT NOT NULL,
    -- The code the instance runs on, fixed at start (version pinning).
    wasm_sha256   TEXT NOT NULL,
    memory_mb     INTEGER NOT NULL,
    timeout_s     INTEGER NOT NULL,
    version       TEXT NOT NULL DEFAULT '',
    -- Bumped by continue-as-new and by a start that replaces a finished run.
    generation    INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,
    input         TEXT,
    output        TEXT,
    custom_status TEXT,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    -- Next history seq.
    next_seq      INTEGER NOT NULL DEFAULT 0,
    -- Something arrived that the orchestrator has not run on yet.
    pending       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orchestrations_by_created ON orchestrations (created_ms, instance_id);
CREATE INDEX IF NOT EXISTS orchestrations_pending ON orchestrations (rid) WHERE pending = 1;

CREATE TABLE IF NOT EXISTS orchestration_history (
    rid        INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    -- The step (host call number) an event belongs to, if any.
    step       INTEGER,
    body       TEXT NOT NULL,
    PRIMARY KEY (rid, seq)
) WITHOUT ROWID;

-- Durable timers not yet fired.
CREATE TABLE IF NOT EXISTS orchestration_timers (
    rid        INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    fire_ms    INTEGER NOT NULL,
    PRIMARY KEY (rid, generation, step)
) WITHOUT ROWID;
