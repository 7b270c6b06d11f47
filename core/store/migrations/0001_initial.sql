-- Taskdeck schema 1: tasks (active and history in one table, so an id never changes),
-- their tags, the event log, per-task log lines, settings, groups and the client inbox.

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,                   -- JSON
    state            TEXT    NOT NULL,
    pause_reasons    INTEGER NOT NULL DEFAULT 0,         -- PauseReason bit mask
    priority         INTEGER NOT NULL,
    position         REAL,                               -- queue order; NULL means id
    grp              TEXT,
    label            TEXT,
    dedup_key        TEXT,
    superseded_by    INTEGER,                            -- releases dedup_key while winding down
    parent_id        INTEGER,
    schedule_id      INTEGER,
    retry_of         INTEGER,
    attempt          INTEGER NOT NULL DEFAULT 1,
    max_retries      INTEGER,
    options          TEXT,                               -- JSON: retry, timeout, ttl, io, fail_fast...
    tags             TEXT,                               -- JSON object, mirrored in task_tags
    created_at       REAL    NOT NULL,
    run_at           REAL,
    expires_at       REAL,
    started_at       REAL,
    finished_at      REAL,
    crash_count      INTEGER NOT NULL DEFAULT 0,
    checkpoint       TEXT,                               -- JSON resume data
    result           TEXT,                               -- JSON
    error            TEXT,
    traceback        TEXT,
    progress         REAL,
    progress_message TEXT,
    bytes_done       INTEGER,
    bytes_total      INTEGER,
    speed            REAL,
    eta              REAL,
    io_read          INTEGER NOT NULL DEFAULT 0,
    io_written       INTEGER NOT NULL DEFAULT 0,
    io_sent          INTEGER NOT NULL DEFAULT 0,
    io_received      INTEGER NOT NULL DEFAULT 0,
    run_seconds      REAL    NOT NULL DEFAULT 0,         -- time spent running, all attempts
    requeue          TEXT                                -- JSON submission to run once more after this
);

-- No index on state or dispatch order: every index on tasks costs a page per commit on
-- the hot path (see research/store-performance.md). The engine keeps active tasks in
-- memory and serves dispatch order from there; history reads use tasks_finished.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tasks_retry_of ON tasks (retry_of) WHERE retry_of IS NOT NULL;
CREATE INDEX tasks_schedule ON tasks (schedule_id) WHERE schedule_id IS NOT NULL;
-- A dedup key is held while its task is active (per kind).
CREATE UNIQUE INDEX tasks_dedup ON tasks (kind, dedup_key)
    WHERE dedup_key IS NOT NULL AND superseded_by IS NULL
      AND state IN ('pending', 'blocked', 'running', 'waiting', 'paused');

CREATE TABLE task_tags (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (task_id, name)
) WITHOUT ROWID;
CREATE INDEX task_tags_lookup ON task_tags (name, value);

-- seq is max(seq) + 1 (no AUTOINCREMENT: it would cost a page per commit); it is never
-- reused because the newest event row is never deleted (see queries.delete_tasks).
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,                 -- strictly increasing, never reused
    at          REAL    NOT NULL,
    kind        TEXT    NOT NULL,
    task_id     INTEGER,
    schedule_id INTEGER,
    scope       TEXT,
    data        TEXT                                 -- JSON object or NULL
);
CREATE INDEX events_task ON events (task_id) WHERE task_id IS NOT NULL;

CREATE TABLE logs (
    id      INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    at      REAL    NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL
);
CREATE INDEX logs_task ON logs (task_id, id);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL                              -- JSON
) WITHOUT ROWID;

CREATE TABLE groups (
    name            TEXT PRIMARY KEY,
    max_concurrency INTEGER,
    paused          INTEGER NOT NULL DEFAULT 0,
    paused_until    REAL
) WITHOUT ROWID;

-- Control requests from clients in other processes, applied by the running engine.
CREATE TABLE inbox (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    op   TEXT NOT NULL,
    args TEXT NOT NULL,                              -- JSON object
    at   REAL NOT NULL
);

-- Kinds registered by the last engine, so clients can list and validate them.
CREATE TABLE kinds (
    name TEXT PRIMARY KEY,
    info TEXT NOT NULL                               -- JSON
) WITHOUT ROWID;
