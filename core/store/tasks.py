"""SQL for task rows and the event log. Functions here run inside a transaction opened by
the Writer (or, for reads, on any connection); none of them commits."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import DependencyFailed, InvalidDependency, InvalidSubmission
from core.store.records import TASK_COLUMNS
from core.store.writer import EventSink
from core.types import (
    ACTIVE_STATES,
    JSON,
    EventKind,
    PauseReason,
    SubmitOutcome,
    SubmitResult,
)

ACTIVE_SQL = "('pending', 'blocked', 'running', 'waiting', 'paused')"
TERMINAL_SQL = "('completed', 'failed', 'cancelled', 'expired', 'superseded', 'dependency_failed', 'skipped')"


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps builds a JSONEncoder, and that a C encoder, on every call: a microsecond of a
# no-op task's life. One C encoder, made once, does the same work (compact separators,
# UTF-8 text, no NaN). Without the circular-reference markers a cycle ends in RecursionError,
# reported as the ValueError json.dumps would raise.
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed: private
_c_encoder = (
    _make_encoder(None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if _make_encoder is not None
    else None
)


def dumps(value: JSON) -> str:
    if _c_encoder is None:  # pragma: no cover - CPython always has the C encoder
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return "".join(_c_encoder(value, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep)") from None


@functools.lru_cache(maxsize=512)
def options_of(text: str) -> Mapping[str, Any]:
    """A task's parsed `options` column, shared by the tasks with the same options (most
    tasks of a kind have the same): read it, never change it."""
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def dumps_or_none(value: JSON) -> str | None:
    return None if value is None else dumps(value)


@dataclass(slots=True)
class NewTask:
    """A validated submission, ready to insert (seconds since the epoch for times)."""

    kind: str
    payload_json: str
    priority: int
    group: str | None
    label: str | None
    key: str | None
    on_duplicate: str
    parent_id: int | None
    schedule_id: int | None
    retry_of: int | None
    max_retries: int | None
    options_json: str | None
    tags: dict[str, str] | None
    created_at: float
    run_at: float | None
    expires_at: float | None
    requeue_json: str | None = None  # the submission itself, for on_duplicate="requeue"
    depends_on: tuple[int, ...] = ()
    dep_policy: str = "cancel"  # on_dependency_failure
    fail_fast: bool = True


@dataclass(slots=True)
class TaskRun:
    """Tasks that differ only in their payloads: one validated template and one encoded
    payload each. submit_many's common case; its rows are built without a NewTask apiece.
    A template never has a dedup key, dependencies or a parent (those go row by row)."""

    template: NewTask
    payloads: list[str]


@dataclass(slots=True)
class SubmitEffects:
    """What a batch of submissions did, beyond the results the caller sees."""

    results: list[SubmitResult] = field(default_factory=list)
    inserted: list[tuple[int, NewTask, int, tuple[int, ...]]] = field(
        default_factory=list
    )  # id, task, reasons, blockers
    changed: list[int] = field(default_factory=list)  # existing tasks whose rows changed
    interrupt: list[int] = field(default_factory=list)  # running tasks to stop as superseded
    runs: list[tuple[int, NewTask, int, int]] = field(default_factory=list)  # first id, template, mask, count


_INSERT_EVENT = "INSERT INTO events (at, kind, task_id, schedule_id, scope, data) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_TASK_EVENT = "INSERT INTO events (at, kind, task_id) VALUES (?, ?, ?)"

# A task row names only the columns it sets: sqlite3 binds each parameter in Python, so a
# plain row's 7 instead of all 17 saves microseconds a row. Rows of one shape share a
# statement (the connection caches it).
_BASE_COLUMNS = ("kind", "payload", "state", "pause_reasons", "priority", "max_retries", "created_at")


@functools.lru_cache(maxsize=256)
def _insert_sql(optional: tuple[str, ...]) -> str:
    columns = _BASE_COLUMNS + optional
    return f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _optional_columns(t: NewTask) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The optional columns `t` sets, and their values, in one fixed order."""
    names: list[str] = []
    values: list[Any] = []
    for column, value in (
        ("grp", t.group),
        ("label", t.label),
        ("dedup_key", t.key),
        ("parent_id", t.parent_id),
        ("schedule_id", t.schedule_id),
        ("retry_of", t.retry_of),
        ("options", t.options_json),
        ("tags", dumps(t.tags) if t.tags else None),
        ("run_at", t.run_at),
        ("expires_at", t.expires_at),
    ):
        if value is not None:
            names.append(column)
            values.append(value)
    return tuple(names), tuple(values)


class TaskSql:
    """Statements over tasks and events; events go to the sink for post-commit publishing."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    # -- events -------------------------------------------------------------------------

    def emit(
        self,
        conn: sqlite3.Connection,
        kind: EventKind,
        at: float,
        task_id: int | None = None,
        data: dict[str, Any] | None = None,
        *,
        schedule_id: int | None = None,
        scope: str | None = None,
    ) -> None:
        name = kind.value
        if schedule_id is None and scope is None and not data:
            cur = conn.execute(_INSERT_TASK_EVENT, (at, name, task_id))
        else:
            cur = conn.execute(
                _INSERT_EVENT, (at, name, task_id, schedule_id, scope, dumps(data) if data else None)
            )
        self.sink.pending.append((cur.lastrowid, at, name, task_id, schedule_id, scope, data))  # type: ignore[arg-type]

    # -- submit -------------------------------------------------------------------------

    def submit(
        self,
        conn: sqlite3.Connection,
        tasks: Sequence[NewTask | TaskRun],
        pause_mask: Callable[[str | None], int],
    ) -> SubmitEffects:
        """Insert (or deduplicate) each task in order; one call is one transaction's worth.

        Raises InvalidSubmission (a missing or finished parent), InvalidDependency (a missing
        dependency) or DependencyFailed (a failed one, with on_dependency_failure="cancel");
        the caller's transaction then writes nothing."""
        fx = SubmitEffects()
        for parent in {t.parent_id for t in tasks if isinstance(t, NewTask) and t.parent_id is not None}:
            check_parent(conn, parent)
        plain: list[NewTask] = []
        for t in tasks:
            if isinstance(t, TaskRun):
                if plain:
                    self._insert_many(conn, plain, pause_mask, fx)
                    plain = []
                self._insert_run(conn, t, pause_mask(t.template.group), fx)
                continue
            if t.key is None and not t.depends_on:
                plain.append(t)
                continue
            if plain:
                self._insert_many(conn, plain, pause_mask, fx)
                plain = []
            if t.depends_on:  # negative ids point back into this batch (submit_graph): -1 is its first row
                t.depends_on = tuple(fx.results[-d - 1].id if d < 0 else d for d in t.depends_on)
            if t.key is None:
                self._insert_with_deps(conn, t, pause_mask(t.group), fx)
            else:
                self._submit_keyed(conn, t, pause_mask, fx)
        if plain:
            self._insert_many(conn, plain, pause_mask, fx)
        return fx

    def _insert_one(self, conn: sqlite3.Connection, t: NewTask, mask: int, blocked: bool = False) -> int:
        state = "blocked" if blocked else "paused" if mask else "pending"
        names, values = _optional_columns(t)
        cur = conn.execute(
            _insert_sql(names),
            (t.kind, t.payload_json, state, mask, t.priority, t.max_retries, t.created_at, *values),
        )
        task_id = cur.lastrowid
        assert task_id is not None
        if t.tags:
            conn.executemany(
                "INSERT INTO task_tags (task_id, name, value) VALUES (?, ?, ?)",
                [(task_id, k, v) for k, v in t.tags.items()],
            )
        return task_id

    def _insert_many(
        self,
        conn: sqlite3.Connection,
        tasks: list[NewTask],
        pause_mask: Callable[[str | None], int],
        fx: SubmitEffects,
    ) -> None:
        masks = [pause_mask(t.group) for t in tasks]
        if len(tasks) < 8 or any(t.depends_on for t in tasks):
            for t, mask in zip(tasks, masks, strict=True):
                self._insert_with_deps(conn, t, mask, fx)
            return
        # Bulk path: ids are consecutive inside our write transaction (AUTOINCREMENT, no
        # other writer can interleave), so executemany can stand in for one insert each.
        first = _next_task_id(conn)
        rows: list[tuple[Any, ...]] = []
        shape: tuple[str, ...] | None = None
        for t, m in zip(tasks, masks, strict=True):
            names, values = _optional_columns(t)
            if names != shape and rows:  # a new shape: insert the run so far (ids stay in order)
                conn.executemany(_insert_sql(shape or ()), rows)
                rows = []
            shape = names
            rows.append(
                (
                    t.kind,
                    t.payload_json,
                    "paused" if m else "pending",
                    m,
                    t.priority,
                    t.max_retries,
                    t.created_at,
                    *values,
                )
            )
        conn.executemany(_insert_sql(shape or ()), rows)
        tag_rows = [(first + i, k, v) for i, t in enumerate(tasks) if t.tags for k, v in t.tags.items()]
        at = tasks[0].created_at
        seq_first = self._bulk_written(conn, first, len(tasks), tag_rows, at)
        pending = self.sink.pending
        for i, (t, m) in enumerate(zip(tasks, masks, strict=True)):
            task_id = first + i
            fx.results.append(SubmitResult(task_id, SubmitOutcome.INSERTED))
            fx.inserted.append((task_id, t, m, ()))
            pending.append((seq_first + i, at, "submitted", task_id, t.schedule_id, None, None))

    def _insert_run(self, conn: sqlite3.Connection, run: TaskRun, mask: int, fx: SubmitEffects) -> None:
        """Insert tasks that share everything but their payloads: one executemany, one
        statement for their events, and no Python object per task beyond its result."""
        t = run.template
        names, values = _optional_columns(t)
        kind = t.kind
        tail = ("paused" if mask else "pending", mask, t.priority, t.max_retries, t.created_at, *values)
        first = _next_task_id(conn)
        conn.executemany(_insert_sql(names), [(kind, p, *tail) for p in run.payloads])
        n = len(run.payloads)
        tags = list(t.tags.items()) if t.tags else []
        tag_rows = [(first + i, k, v) for i in range(n) for k, v in tags]
        at = t.created_at
        seq_first = self._bulk_written(conn, first, n, tag_rows, at)
        inserted = SubmitOutcome.INSERTED
        fx.results.extend([SubmitResult(first + i, inserted) for i in range(n)])
        fx.runs.append((first, t, mask, n))
        sid = t.schedule_id
        events = [(seq_first + i, at, "submitted", first + i, sid, None, None) for i in range(n)]
        self.sink.pending.extend(events)

    def _bulk_written(
        self,
        conn: sqlite3.Connection,
        first: int,
        count: int,
        tag_rows: list[tuple[int, str, str]],
        at: float,
    ) -> int:
        """After `count` rows were inserted from id `first` on in one go: check their ids
        are consecutive, add their tags and their "submitted" events; returns the first
        event's seq."""
        last = _next_task_id(conn) - 1
        if last - first + 1 != count:  # pragma: no cover - would mean a broken invariant
            raise RuntimeError(f"bulk insert ids are not consecutive ({first}..{last} for {count})")
        if tag_rows:
            conn.executemany("INSERT INTO task_tags (task_id, name, value) VALUES (?, ?, ?)", tag_rows)
        # One statement writes every "submitted" event, in id order, from the rows just
        # inserted: SQLite loops in C instead of binding a parameter tuple per row.
        conn.execute(
            "INSERT INTO events (at, kind, task_id, schedule_id) SELECT ?, 'submitted', id, schedule_id"
            " FROM tasks WHERE id BETWEEN ? AND ? ORDER BY id",
            (at, first, last),
        )
        seq_last: int = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        return seq_last - count + 1

    def _insert_with_deps(self, conn: sqlite3.Connection, t: NewTask, mask: int, fx: SubmitEffects) -> int:
        """Insert one task; with dependencies, blocked while any of them is unfinished."""
        deps = t.depends_on
        blockers = resolve_dependencies(conn, deps, t.dep_policy) if deps else ()
        task_id = self._insert_one(conn, t, mask, blocked=bool(blockers))
        if deps:
            conn.executemany(
                "INSERT OR IGNORE INTO task_deps (task_id, depends_on) VALUES (?, ?)",
                [(task_id, d) for d in deps],
            )
        self.emit(conn, EventKind.SUBMITTED, t.created_at, task_id, schedule_id=t.schedule_id)
        if blockers:
            self.emit(conn, EventKind.BLOCKED, t.created_at, task_id, {"on": list(blockers)})
        fx.results.append(SubmitResult(task_id, SubmitOutcome.INSERTED))
        fx.inserted.append((task_id, t, mask, blockers))
        return task_id

    def _submit_keyed(
        self,
        conn: sqlite3.Connection,
        t: NewTask,
        pause_mask: Callable[[str | None], int],
        fx: SubmitEffects,
    ) -> None:
        row = conn.execute(
            "SELECT id, state, priority, pause_reasons FROM tasks WHERE kind = ? AND dedup_key = ? "
            f"AND superseded_by IS NULL AND state IN {ACTIVE_SQL}",
            (t.kind, t.key),
        ).fetchone()
        if row is None:
            self._insert_with_deps(conn, t, pause_mask(t.group), fx)
            return
        old_id, old_state, old_priority, old_mask = row
        policy = t.on_duplicate
        now = t.created_at
        if policy == "reject":
            fx.results.append(SubmitResult(old_id, SubmitOutcome.REJECTED))
            return
        if policy == "supersede":
            if old_state in ("pending", "paused", "blocked"):
                mask = pause_mask(t.group) | (old_mask & PauseReason.USER)
                blockers = resolve_dependencies(conn, t.depends_on, t.dep_policy) if t.depends_on else ()
                state = "blocked" if blockers else "paused" if mask else "pending"
                conn.execute(
                    "UPDATE tasks SET payload = ?, priority = ?, grp = ?, label = ?, options = ?, "
                    "tags = ?, max_retries = ?, run_at = ?, expires_at = ?, attempt = 1, "
                    "error = NULL, traceback = NULL, checkpoint = NULL, progress = NULL, "
                    "progress_message = NULL, bytes_done = NULL, bytes_total = NULL, "
                    "state = ?, pause_reasons = ?, requeue = NULL WHERE id = ?",
                    (
                        t.payload_json,
                        t.priority,
                        t.group,
                        t.label,
                        t.options_json,
                        dumps(t.tags) if t.tags else None,
                        t.max_retries,
                        t.run_at,
                        t.expires_at,
                        state,
                        mask,
                        old_id,
                    ),
                )
                conn.execute("DELETE FROM task_deps WHERE task_id = ?", (old_id,))
                conn.executemany(
                    "INSERT OR IGNORE INTO task_deps (task_id, depends_on) VALUES (?, ?)",
                    [(old_id, d) for d in t.depends_on],
                )
                conn.execute("DELETE FROM task_tags WHERE task_id = ?", (old_id,))
                if t.tags:
                    conn.executemany(
                        "INSERT INTO task_tags (task_id, name, value) VALUES (?, ?, ?)",
                        [(old_id, k, v) for k, v in t.tags.items()],
                    )
                self.emit(conn, EventKind.SUPERSEDED, now, old_id, {"in_place": True})
                fx.results.append(SubmitResult(old_id, SubmitOutcome.SUPERSEDED))
                fx.changed.append(old_id)
                return
            # Running or waiting: release the key, insert the replacement, stop the old one.
            conn.execute("UPDATE tasks SET superseded_by = -1 WHERE id = ?", (old_id,))
            new_id = self._insert_with_deps(conn, t, pause_mask(t.group), fx)
            conn.execute("UPDATE tasks SET superseded_by = ? WHERE id = ?", (new_id, old_id))
            fx.results[-1] = SubmitResult(new_id, SubmitOutcome.SUPERSEDED)
            fx.interrupt.append(old_id)
            return
        if policy == "requeue" and old_state == "running":
            conn.execute("UPDATE tasks SET requeue = ? WHERE id = ?", (t.requeue_json, old_id))
            self.emit(conn, EventKind.REQUEUED, now, old_id)
            fx.results.append(SubmitResult(old_id, SubmitOutcome.REQUEUED))
            return
        # skip (and requeue of a task that is not running): upgrade a more urgent duplicate
        if old_state in ("pending", "paused") and t.priority < old_priority:
            conn.execute("UPDATE tasks SET priority = ? WHERE id = ?", (t.priority, old_id))
            self.emit(
                conn,
                EventKind.PRIORITY_CHANGED,
                now,
                old_id,
                {"old": old_priority, "new": t.priority, "reason": "duplicate submitted"},
            )
            fx.results.append(SubmitResult(old_id, SubmitOutcome.UPGRADED))
            fx.changed.append(old_id)
            return
        fx.results.append(SubmitResult(old_id, SubmitOutcome.DUPLICATE))

    # -- reads used by the engine ---------------------------------------------------------

    def load_active(
        self, conn: sqlite3.Connection, ids: Iterable[int] | None = None
    ) -> list[tuple[Any, ...]]:
        """Dispatch fields of active tasks: (id, kind, priority, pos, grp, state, reasons,
        run_at, expires_at, parent_id, started, label, attempt, phase, options, schedule_id)."""
        sql = (
            "SELECT id, kind, priority, coalesce(position, id), grp, state, pause_reasons, run_at, "
            "expires_at, parent_id, started_at IS NOT NULL, label, attempt, phase, options, schedule_id "
            "FROM tasks "
            f"WHERE state IN {ACTIVE_SQL}"
        )
        if ids is None:
            return conn.execute(sql).fetchall()
        out: list[tuple[Any, ...]] = []
        id_list = list(ids)
        for i in range(0, len(id_list), 500):
            chunk = id_list[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out += conn.execute(sql + f" AND id IN ({marks})", chunk).fetchall()
        return out

    def get_row(self, conn: sqlite3.Connection, task_id: int) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        return row


def check_parent(conn: sqlite3.Connection, parent: int) -> None:
    row = conn.execute("SELECT state FROM tasks WHERE id = ?", (parent,)).fetchone()
    if row is None:
        raise InvalidSubmission("parent", f"task {parent} does not exist")
    if row[0] not in ACTIVE_STATE_VALUES:
        raise InvalidSubmission("parent", f"task {parent} already ended ({row[0]})")


def resolve_dependencies(conn: sqlite3.Connection, deps: Sequence[int], policy: str) -> tuple[int, ...]:
    """The dependencies still unfinished (a new task waits for them). A missing one raises
    InvalidDependency; one that already ended other than completed raises DependencyFailed
    under policy "cancel"."""
    blockers = []
    for dep in deps:
        row = conn.execute("SELECT state FROM tasks WHERE id = ?", (dep,)).fetchone()
        if row is None:
            raise InvalidDependency(f"depends_on: task {dep} does not exist")
        state = row[0]
        if state in ACTIVE_STATE_VALUES:
            blockers.append(dep)
        elif state != "completed" and policy == "cancel":
            raise DependencyFailed(f"depends_on: task {dep} already ended ({state})")
    return tuple(blockers)


def _next_task_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'").fetchone()
    return (row[0] if row else 0) + 1


ACTIVE_STATE_VALUES = frozenset(s.value for s in ACTIVE_STATES)
