-- Schedules: persisted triggers that submit a task each time they fire.

CREATE TABLE schedules (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT,
    kind                 TEXT    NOT NULL,
    payload              TEXT    NOT NULL,                 -- JSON
    cron                 TEXT,                             -- one of cron, every, at
    every                REAL,                             -- seconds
    at                   REAL,                             -- epoch seconds
    tz                   TEXT,                             -- IANA name; NULL: local
    start_at             REAL,
    end_at               REAL,
    max_runs             INTEGER,
    overlap              TEXT    NOT NULL DEFAULT 'skip',
    misfire              TEXT    NOT NULL DEFAULT 'run_once',
    misfire_grace        REAL    NOT NULL DEFAULT 60,
    jitter               REAL    NOT NULL DEFAULT 0,
    pause_after_failures INTEGER,
    options              TEXT,                             -- JSON: submit options for its tasks
    paused               INTEGER NOT NULL DEFAULT 0,
    ended                INTEGER NOT NULL DEFAULT 0,       -- no more fires (max_runs, end_at, one-shot)
    created_at           REAL    NOT NULL,
    next_fire            REAL,
    last_fire            REAL,                             -- watermark: the last instant handled
    last_task_id         INTEGER,
    last_result          TEXT,                             -- state of its last run that ended
    last_finished        REAL,
    run_count            INTEGER NOT NULL DEFAULT 0,
    failure_streak       INTEGER NOT NULL DEFAULT 0,
    missed_runs          INTEGER NOT NULL DEFAULT 0,       -- at the last catch-up
    missed_note          TEXT
);
