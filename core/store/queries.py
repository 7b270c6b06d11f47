"""Read queries returning our records, plus history deletion and pruning."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from core.store.records import EVENT_COLUMNS, TASK_COLUMNS, event_from_row, loads, log_from_row, task_from_row
from core.store.tasks import ACTIVE_SQL, TERMINAL_SQL, TaskSql
from core.types import Event, EventKind, KindStats, LogLine, TaskRecord


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _in(column: str, values: Sequence[Any], params: list[Any]) -> str:
    params.extend(values)
    return f"{column} IN ({','.join('?' * len(values))})"


def get(conn: sqlite3.Connection, task_id: int) -> TaskRecord | None:
    row = conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else task_from_row(row)


def select_tasks(
    conn: sqlite3.Connection,
    *,
    active: bool,
    states: Sequence[str] | None = None,
    kind: str | None = None,
    group: str | None = None,
    tag: tuple[str, str] | None = None,
    parent: int | None = None,
    schedule_id: int | None = None,
    search: str | None = None,
    since: float | None = None,
    until: float | None = None,
    ids: Sequence[int] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[TaskRecord]:
    where: list[str] = []
    params: list[Any] = []
    if states:
        where.append(_in("state", states, params))
    else:
        where.append(f"state IN {ACTIVE_SQL if active else TERMINAL_SQL}")
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if group is not None:
        where.append("grp = ?")
        params.append(group)
    if tag is not None:
        where.append("id IN (SELECT task_id FROM task_tags WHERE name = ? AND value = ?)")
        params += [tag[0], tag[1]]
    if parent is not None:
        where.append("parent_id = ?")
        params.append(parent)
    if schedule_id is not None:
        where.append("schedule_id = ?")
        params.append(schedule_id)
    if since is not None:
        where.append("finished_at >= ?")
        params.append(since)
    if until is not None:
        where.append("finished_at < ?")
        params.append(until)
    if ids is not None:
        where.append(_in("id", list(ids), params))
    if search:
        where.append(
            "(label LIKE ? ESCAPE '\\' OR kind LIKE ? ESCAPE '\\' OR error LIKE ? ESCAPE '\\' "
            "OR payload LIKE ? ESCAPE '\\' OR CAST(id AS TEXT) = ?)"
        )
        pattern = _like(search)
        params += [pattern, pattern, pattern, pattern, search.strip().lstrip("#")]
    order = "priority, coalesce(position, id), id" if active else "finished_at DESC, id DESC"
    sql = f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY {order}"
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
    return [task_from_row(r) for r in conn.execute(sql, params)]


def dependencies(conn: sqlite3.Connection, task_id: int) -> list[int]:
    """Ids a task declared it depends on (kept after either ends)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT depends_on FROM task_deps WHERE task_id = ? ORDER BY depends_on", (task_id,)
        )
    ]


def dependents(conn: sqlite3.Connection, task_id: int) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT task_id FROM task_deps WHERE depends_on = ? ORDER BY task_id", (task_id,)
        )
    ]


def dependency_states(conn: sqlite3.Connection, task_id: int) -> list[tuple[int, str | None]]:
    """(dependency id, its state or None if it is gone from history) of one task."""
    return conn.execute(
        "SELECT d.depends_on, t.state FROM task_deps d LEFT JOIN tasks t ON t.id = d.depends_on "
        "WHERE d.task_id = ? ORDER BY d.depends_on",
        (task_id,),
    ).fetchall()


def child_outcomes(conn: sqlite3.Connection, parent: int) -> list[tuple[int, str, Any, str | None]]:
    """(id, state, result, error) of every child of `parent`, in id order."""
    return [
        (id_, state, loads(result), error)
        for id_, state, result, error in conn.execute(
            "SELECT id, state, result, error FROM tasks WHERE parent_id = ? ORDER BY id", (parent,)
        )
    ]


def tree_progress(conn: sqlite3.Connection, parent: int) -> tuple[int, int, int, int, float]:
    """Children of `parent`: (count, ended, bytes_done, bytes_total, sum of progress)."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(finished_at IS NOT NULL), 0), coalesce(sum(bytes_done), 0), "
        "coalesce(sum(bytes_total), 0), coalesce(sum(CASE WHEN finished_at IS NOT NULL THEN 1.0 "
        "ELSE coalesce(progress, 0) END), 0) FROM tasks WHERE parent_id = ?",
        (parent,),
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4])


def parents_among(conn: sqlite3.Connection, ids: Sequence[int]) -> list[int]:
    """Those of `ids` that have (or had) children."""
    out: list[int] = []
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        marks = ",".join("?" * len(chunk))
        out += [
            r[0]
            for r in conn.execute(f"SELECT DISTINCT parent_id FROM tasks WHERE parent_id IN ({marks})", chunk)
        ]
    return out


def state_and_result(conn: sqlite3.Connection, task_id: int) -> tuple[str, Any] | None:
    row = conn.execute("SELECT state, result FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else (row[0], loads(row[1]))


def dependency_results(conn: sqlite3.Connection, task_id: int) -> list[tuple[int, str | None, Any]]:
    """(dependency id, its state, its result) for each declared dependency, by id."""
    return [
        (dep, state, loads(result))
        for dep, state, result in conn.execute(
            "SELECT d.depends_on, t.state, t.result FROM task_deps d "
            "LEFT JOIN tasks t ON t.id = d.depends_on WHERE d.task_id = ? ORDER BY d.depends_on",
            (task_id,),
        )
    ]


def stored_result(conn: sqlite3.Connection, task_id: int) -> Any:
    row = conn.execute("SELECT result FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else loads(row[0])


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())


def events_after(conn: sqlite3.Connection, seq: int, limit: int) -> list[Event]:
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
    ).fetchall()
    return [event_from_row(r) for r in rows]


def raw_events_after(conn: sqlite3.Connection, seq: int, limit: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
    ).fetchall()


def last_event_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def events_of(conn: sqlite3.Connection, task_id: int) -> list[Event]:
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE task_id = ? ORDER BY seq", (task_id,)
    ).fetchall()
    return [event_from_row(r) for r in rows]


def logs(conn: sqlite3.Connection, task_id: int, since: int | None = None) -> list[LogLine]:
    rows = conn.execute(
        "SELECT id, task_id, at, level, message FROM logs WHERE task_id = ? AND id > ? ORDER BY id",
        (task_id, since or 0),
    ).fetchall()
    return [log_from_row(r) for r in rows]


def stats(conn: sqlite3.Connection, kind: str) -> KindStats:
    row = conn.execute(
        "SELECT count(*), sum(state = 'completed'), sum(state = 'failed'), "
        "avg(CASE WHEN state = 'completed' THEN run_seconds END), "
        "sum(run_seconds), sum(io_read), sum(io_written), sum(io_sent), sum(io_received) "
        f"FROM tasks WHERE kind = ? AND state IN {TERMINAL_SQL}",
        (kind,),
    ).fetchone()
    count, completed, failed, mean, seconds, r, w, s, rx = row
    completed = completed or 0
    failed = failed or 0
    rates: dict[str, float] = {}
    if seconds:
        rates = {
            "read": (r or 0) / seconds,
            "written": (w or 0) / seconds,
            "sent": (s or 0) / seconds,
            "received": (rx or 0) / seconds,
        }
    ended = completed + failed
    return KindStats(
        kind=kind,
        count=count,
        completed=completed,
        failed=failed,
        mean_duration=mean,
        failure_rate=(failed / ended) if ended else None,
        io_rates=rates,
    )


def _referenced_ids_sql() -> str:
    """History rows an active task still points at: they must outlive it."""
    return (
        f"SELECT parent_id FROM tasks WHERE parent_id IS NOT NULL AND state IN {ACTIVE_SQL} "
        f"UNION SELECT retry_of FROM tasks WHERE retry_of IS NOT NULL AND state IN {ACTIVE_SQL} "
        f"UNION SELECT d.depends_on FROM task_deps d JOIN tasks t ON t.id = d.task_id "
        f"WHERE t.state IN {ACTIVE_SQL}"
    )


def delete_tasks(conn: sqlite3.Connection, ids: Sequence[int], events_upto: int | None = None) -> None:
    """Delete tasks with their logs and edges, and their events up to seq `events_upto`
    (later ones stay for subscribers that have not read them yet; see sweep_events)."""
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        marks = ",".join("?" * len(chunk))
        # The newest event stays, or its seq would be handed out again.
        conn.execute(
            f"DELETE FROM events WHERE task_id IN ({marks}) AND seq < (SELECT max(seq) FROM events) "
            "AND seq <= ?",
            [*chunk, events_upto if events_upto is not None else 2**62],
        )
        conn.execute(f"DELETE FROM logs WHERE task_id IN ({marks})", chunk)
        conn.execute(f"DELETE FROM task_deps WHERE task_id IN ({marks})", chunk)
        conn.execute(f"DELETE FROM tasks WHERE id IN ({marks})", chunk)


def sweep_events(conn: sqlite3.Connection, after: int, upto: int) -> int:
    """Delete events in (after, upto] whose task is gone (kept earlier for a lagging
    subscriber); returns how many went."""
    return conn.execute(
        "DELETE FROM events WHERE seq > ? AND seq <= ? AND seq < (SELECT max(seq) FROM events) "
        "AND task_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = events.task_id)",
        (after, upto),
    ).rowcount


def deletable_history(conn: sqlite3.Connection, ids: Iterable[int]) -> list[int]:
    """The given ids that are terminal and not referenced by an active task."""
    wanted = list(dict.fromkeys(ids))
    out: list[int] = []
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        out += [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM tasks WHERE id IN ({marks}) AND state IN {TERMINAL_SQL} "
                f"AND id NOT IN ({_referenced_ids_sql()})",
                chunk,
            )
        ]
    return out


def prune_candidates(
    conn: sqlite3.Connection, *, keep: int | None, older_than: float | None, limit: int
) -> list[int]:
    """Oldest terminal tasks beyond `keep` or finished before `older_than`, except those an
    active task refers to. Walks the finished_at index; never scans the table."""
    found: list[int] = []
    if keep is not None:
        edge = conn.execute(
            "SELECT finished_at, id FROM tasks WHERE finished_at IS NOT NULL "
            "ORDER BY finished_at DESC, id DESC LIMIT 1 OFFSET ?",
            (keep,),
        ).fetchone()
        if edge is not None:  # the newest task beyond `keep`, and everything older, go
            found += [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM tasks WHERE finished_at IS NOT NULL AND (finished_at < ? OR "
                    "(finished_at = ? AND id <= ?)) ORDER BY finished_at, id LIMIT ?",
                    (edge[0], edge[0], edge[1], limit),
                )
            ]
    if older_than is not None and len(found) < limit:
        found += [
            r[0]
            for r in conn.execute(
                "SELECT id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ? "
                "ORDER BY finished_at, id LIMIT ?",
                (older_than, limit),
            )
        ]
    if not found:
        return found
    referenced = {r[0] for r in conn.execute(_referenced_ids_sql())}
    return [i for i in dict.fromkeys(found) if i not in referenced][:limit]


def history_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute(f"SELECT count(*) FROM tasks WHERE state IN {TERMINAL_SQL}").fetchone()[0])


def record_pruned(sql: TaskSql, conn: sqlite3.Connection, now: float, ids: list[int], *, user: bool) -> None:
    kind = EventKind.DELETED if user else EventKind.PRUNED
    sql.emit(conn, kind, now, None, {"ids": ids[:1000], "count": len(ids)})
