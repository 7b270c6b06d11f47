"""SQL for schedules. Rows travel as SchedRow (times in epoch seconds)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, fields
from typing import Any

from core.store.tasks import dumps


@dataclass(slots=True)
class SchedRow:
    """One schedule as stored; the engine keeps these in memory and writes them back."""

    kind: str
    payload_json: str
    created_at: float
    id: int = 0
    name: str | None = None
    cron: str | None = None
    every: float | None = None
    at: float | None = None
    tz: str | None = None
    start_at: float | None = None
    end_at: float | None = None
    max_runs: int | None = None
    overlap: str = "skip"
    misfire: str = "run_once"
    misfire_grace: float = 60.0
    jitter: float = 0.0
    pause_after_failures: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # submit options for its tasks
    paused: bool = False
    ended: bool = False
    next_fire: float | None = None
    last_fire: float | None = None
    last_task_id: int | None = None
    last_result: str | None = None
    last_finished: float | None = None
    run_count: int = 0
    failure_streak: int = 0
    missed_runs: int = 0
    missed_note: str | None = None


_COLUMNS = [f.name for f in fields(SchedRow) if f.name not in ("id", "payload_json", "options")]
_ASSIGN = ", ".join(f"{c} = ?" for c in _COLUMNS)
_SELECT = f"SELECT id, payload, options, {', '.join(_COLUMNS)} FROM schedules"


def _values(row: SchedRow) -> list[Any]:
    values = [getattr(row, c) for c in _COLUMNS]
    return [int(v) if isinstance(v, bool) else v for v in values]


def insert(conn: sqlite3.Connection, row: SchedRow) -> int:
    cur = conn.execute(
        f"INSERT INTO schedules (payload, options, {', '.join(_COLUMNS)}) "
        f"VALUES (?, ?, {', '.join('?' * len(_COLUMNS))})",
        [row.payload_json, dumps(row.options) if row.options else None, *_values(row)],
    )
    assert cur.lastrowid is not None
    row.id = cur.lastrowid
    return cur.lastrowid


def save(conn: sqlite3.Connection, row: SchedRow) -> bool:
    """Write every column of an existing schedule back; False if it is gone."""
    cur = conn.execute(
        f"UPDATE schedules SET payload = ?, options = ?, {_ASSIGN} WHERE id = ?",
        [row.payload_json, dumps(row.options) if row.options else None, *_values(row), row.id],
    )
    return cur.rowcount == 1


def delete(conn: sqlite3.Connection, schedule_id: int) -> bool:
    return conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount == 1


def _from_row(r: tuple[Any, ...]) -> SchedRow:
    id_, payload, options, *rest = r
    values = dict(zip(_COLUMNS, rest, strict=True))
    values["paused"] = bool(values["paused"])
    values["ended"] = bool(values["ended"])
    return SchedRow(id=id_, payload_json=payload, options=json.loads(options) if options else {}, **values)


def load(conn: sqlite3.Connection, schedule_id: int | None = None) -> list[SchedRow]:
    if schedule_id is None:
        return [_from_row(r) for r in conn.execute(_SELECT + " ORDER BY id")]
    return [_from_row(r) for r in conn.execute(_SELECT + " WHERE id = ?", (schedule_id,))]


def insert_skipped(
    conn: sqlite3.Connection, row: SchedRow, now: float, reason: str, tags: dict[str, str]
) -> int:
    """A history row for a fire that did not run (overlap: the previous run is active)."""
    cur = conn.execute(
        "INSERT INTO tasks (kind, payload, state, priority, grp, label, schedule_id, options, tags, "
        "created_at, finished_at, error) VALUES (?, ?, 'skipped', ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
        (
            row.kind,
            row.payload_json,
            row.options.get("priority", 128),
            row.options.get("group"),
            row.options.get("label") or row.name,
            row.id,
            dumps(tags),
            now,
            now,
            reason,
        ),
    )
    assert cur.lastrowid is not None
    conn.executemany(
        "INSERT INTO task_tags (task_id, name, value) VALUES (?, ?, ?)",
        [(cur.lastrowid, k, v) for k, v in tags.items()],
    )
    return cur.lastrowid
