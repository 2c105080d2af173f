-- Tasks: every async invocation (stateful ones are visible through the
-- task API; plain async ones are durable too, just not listed).
CREATE TABLE IF NOT EXISTS tasks (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    service            TEXT NOT NULL,
    function           TEXT NOT NULL,
    qualifier          TEXT NOT NULL,
    invocation_id      TEXT NOT NULL,
    stateful           INTEGER NOT NULL,
    kind               TEXT NOT NULL DEFAULT 'event',
    status             TEXT NOT NULL,
    payload            BLOB NOT NULL,
    request_id         TEXT NOT NULL,
    created_ms         INTEGER NOT NULL,
    end_ms             INTEGER NOT NULL DEFAULT 0,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_run_ms        INTEGER NOT NULL DEFAULT 0,
    error              TEXT NOT NULL DEFAULT '',
    result             BLOB,
    destination_status TEXT NOT NULL DEFAULT '',
    instance_id        TEXT NOT NULL DEFAULT '',
    duration_ms        INTEGER NOT NULL DEFAULT 0,
    logs               BLOB,
    events             INTEGER NOT NULL DEFAULT 0,
    fuel_consumed      INTEGER,
    UNIQUE (service, function, invocation_id)
);

CREATE INDEX IF NOT EXISTS tasks_by_time ON tasks (service, function, created_ms, seq);
-- Unfinished tasks (recovery, invalidation). Keyed on end_ms, which only a
-- terminal transition sets, so Dequeued/Running/Retrying updates leave this
-- index alone.
DROP INDEX IF EXISTS tasks_active;
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (seq) WHERE end_ms = 0;
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (end_ms) WHERE end_ms > 0;

CREATE TABLE IF NOT EXISTS task_events (
    task_seq   INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    detail     TEXT NOT NULL,
    PRIMARY KEY (task_seq, event_id)
) WITHOUT ROWID;
-- Finished tasks by state, for list filters on a terminal state (Failed
-- among a million Succeeded). Partial on end_ms like tasks_ended: a row
-- enters it once, at its terminal transition, so the Dequeued/Running
-- updates before that leave it alone.
-- It also counts finished tasks by state for the console's overview.
CREATE INDEX IF NOT EXISTS tasks_finished_by_status ON tasks (service, function, status, stateful, created_ms, seq) WHERE end_ms > 0;
-- Id prefixes: the page's rows are chosen from this index alone (the
-- prefix range, then the newest or oldest by created time), so a prefix
-- that matches 100,000 tasks reads 100,000 index entries, not the rows.
CREATE INDEX IF NOT EXISTS tasks_by_id_time ON tasks (service, function, invocation_id, created_ms, stateful);
