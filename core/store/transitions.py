"""State changes of existing tasks. Each compares and sets on the old state, and writes its
event in the same transaction (the caller's)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from core.store.tasks import ACTIVE_SQL, TaskSql, dumps
from core.types import EventKind, PauseReason

_CLAIM = (
    "UPDATE tasks SET state = 'running', started_at = ?, pause_reasons = 0 "
    "WHERE id = ? AND state = 'pending' "
    "RETURNING payload, checkpoint, options, attempt, max_retries, schedule_id, crash_count"
)
_END_RUN = (
    "UPDATE tasks SET state = ?, pause_reasons = ?, finished_at = ?, result = coalesce(?, result), "
    "error = ?, traceback = ?, run_at = ?, attempt = ?, checkpoint = ?, speed = NULL, eta = NULL, "
    "progress = coalesce(?, progress), run_seconds = run_seconds + ?, io_read = io_read + ?, "
    "io_written = io_written + ?, io_sent = io_sent + ?, io_received = io_received + ?, "
    "crash_count = 0, phase = coalesce(?, phase) WHERE id = ? AND state = 'running' RETURNING requeue"
)

# The common end of a run: nothing to store but the time it took (7 parameters, not 17).
_END_RUN_PLAIN = (
    "UPDATE tasks SET state = ?, pause_reasons = 0, finished_at = ?, error = NULL, traceback = NULL, "
    "run_at = NULL, attempt = ?, checkpoint = NULL, speed = NULL, eta = NULL, "
    "progress = coalesce(?, progress), run_seconds = run_seconds + ?, crash_count = 0 "
    "WHERE id = ? AND state = 'running' RETURNING requeue"
)


class Transitions:
    def __init__(self, sql: TaskSql) -> None:
        self.sql = sql

    def claim(
        self, conn: sqlite3.Connection, task_id: int, now: float, attempt: int
    ) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = conn.execute(_CLAIM, (now, task_id)).fetchone()
        if row is not None:
            self.sql.emit(
                conn, EventKind.STARTED, now, task_id, {"attempt": attempt} if attempt > 1 else None
            )
        return row

    def end_run(
        self,
        conn: sqlite3.Connection,
        task_id: int,
        now: float,
        *,
        state: str,
        event: EventKind,
        event_data: dict[str, Any] | None = None,
        mask: int = 0,
        result_json: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
        run_at: float | None = None,
        attempt: int,
        checkpoint_json: str | None = None,
        progress: float | None = None,
        run_seconds: float = 0.0,
        io: Sequence[int] = (0, 0, 0, 0),
        phase: str | None = None,
    ) -> tuple[bool, str | None]:
        """Move a running task on; returns (whether it was running, its requeue request)."""
        terminal = state not in ("pending", "paused", "waiting")
        if (
            terminal
            and not mask
            and result_json is None
            and error is None
            and traceback is None
            and run_at is None
            and checkpoint_json is None
            and phase is None
            and not any(io)
        ):
            row = conn.execute(
                _END_RUN_PLAIN, (state, now, attempt, progress, run_seconds, task_id)
            ).fetchone()
        else:
            row = self._end_run_wide(
                conn, task_id, now, state, terminal, mask, result_json, error, traceback, run_at, attempt,
                checkpoint_json, progress, run_seconds, io, phase,
            )  # fmt: skip
        if row is None:
            return False, None
        self.sql.emit(conn, event, now, task_id, event_data)
        return True, row[0]

    @staticmethod
    def _end_run_wide(
        conn: sqlite3.Connection,
        task_id: int,
        now: float,
        state: str,
        terminal: bool,
        mask: int,
        result_json: str | None,
        error: str | None,
        traceback: str | None,
        run_at: float | None,
        attempt: int,
        checkpoint_json: str | None,
        progress: float | None,
        run_seconds: float,
        io: Sequence[int],
        phase: str | None,
    ) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = conn.execute(
            _END_RUN,
            (
                state,
                mask,
                now if terminal else None,
                result_json,
                error,
                traceback,
                run_at,
                attempt,
                checkpoint_json,
                progress,
                run_seconds,
                io[0],
                io[1],
                io[2],
                io[3],
                phase,
                task_id,
            ),
        ).fetchone()
        return row

    def end_idle(
        self,
        conn: sqlite3.Connection,
        task_id: int,
        now: float,
        *,
        state: str,
        event: EventKind,
        error: str | None = None,
        event_data: dict[str, Any] | None = None,
    ) -> bool:
        """Cancel or expire a task that is not running."""
        cur = conn.execute(
            "UPDATE tasks SET state = ?, finished_at = ?, error = coalesce(?, error), speed = NULL, "
            f"eta = NULL WHERE id = ? AND state IN {ACTIVE_SQL} AND state != 'running'",
            (state, now, error, task_id),
        )
        if cur.rowcount != 1:
            return False
        self.sql.emit(conn, event, now, task_id, event_data)
        return True

    def set_pause(
        self,
        conn: sqlite3.Connection,
        task_id: int,
        now: float,
        mask: int,
        *,
        event: EventKind | None,
        event_data: dict[str, Any] | None = None,
    ) -> bool:
        """Set the pause mask of a task that is not running (paused iff the mask is set)."""
        cur = conn.execute(
            "UPDATE tasks SET pause_reasons = ?, state = CASE WHEN state = 'blocked' THEN state "
            "WHEN ? != 0 THEN 'paused' ELSE 'pending' END "
            "WHERE id = ? AND state IN ('pending', 'paused', 'blocked')",
            (mask, mask, task_id),
        )
        if cur.rowcount != 1:
            return False
        if event is not None:
            self.sql.emit(conn, event, now, task_id, event_data)
        return True

    def unblock(self, conn: sqlite3.Connection, task_id: int, now: float) -> bool:
        """A blocked task whose dependencies all ended becomes pending (or paused)."""
        cur = conn.execute(
            "UPDATE tasks SET state = CASE WHEN pause_reasons != 0 THEN 'paused' ELSE 'pending' END "
            "WHERE id = ? AND state = 'blocked'",
            (task_id,),
        )
        if cur.rowcount != 1:
            return False
        self.sql.emit(conn, EventKind.UNBLOCKED, now, task_id)
        return True

    def finalize_ready(self, conn: sqlite3.Connection, task_id: int, now: float, children: int) -> bool:
        """A waiting parent whose children all ended is queued to finalize."""
        cur = conn.execute(
            "UPDATE tasks SET state = CASE WHEN pause_reasons != 0 THEN 'paused' ELSE 'pending' END, "
            "phase = 'finalize', run_at = NULL WHERE id = ? AND state = 'waiting'",
            (task_id,),
        )
        if cur.rowcount != 1:
            return False
        self.sql.emit(conn, EventKind.FINALIZING, now, task_id, {"children": children})
        return True

    def set_pause_many(self, conn: sqlite3.Connection, changes: Iterable[tuple[int, int]]) -> None:
        conn.executemany(
            "UPDATE tasks SET pause_reasons = ?, state = CASE WHEN state = 'blocked' THEN state "
            "WHEN ? != 0 THEN 'paused' ELSE 'pending' END "
            "WHERE id = ? AND state IN ('pending', 'paused', 'blocked')",
            [(mask, mask, task_id) for task_id, mask in changes],
        )

    def set_running_mask(self, conn: sqlite3.Connection, task_id: int, mask: int) -> None:
        conn.execute("UPDATE tasks SET pause_reasons = ? WHERE id = ? AND state = 'running'", (mask, task_id))

    def set_priority(
        self,
        conn: sqlite3.Connection,
        task_id: int,
        now: float,
        old: int,
        new: int,
        position: float | None = None,
        *,
        moved: dict[str, Any] | None = None,
    ) -> bool:
        cur = conn.execute(
            "UPDATE tasks SET priority = ?, position = coalesce(?, position) "
            f"WHERE id = ? AND state IN {ACTIVE_SQL}",
            (new, position, task_id),
        )
        if cur.rowcount != 1:
            return False
        if moved is not None:
            self.sql.emit(conn, EventKind.MOVED, now, task_id, moved)
        else:
            self.sql.emit(conn, EventKind.PRIORITY_CHANGED, now, task_id, {"old": old, "new": new})
        return True

    def clear_progress(self, conn: sqlite3.Connection, task_id: int) -> None:
        conn.execute(
            "UPDATE tasks SET progress = NULL, progress_message = NULL, bytes_done = NULL, "
            "bytes_total = NULL WHERE id = ?",
            (task_id,),
        )

    def save_checkpoint(self, conn: sqlite3.Connection, task_id: int, text: str) -> None:
        conn.execute("UPDATE tasks SET checkpoint = ? WHERE id = ?", (text, task_id))

    def write_progress(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """rows: (progress, message, bytes_done, bytes_total, speed, eta, task_id)."""
        conn.executemany(
            "UPDATE tasks SET progress = ?, progress_message = ?, bytes_done = ?, bytes_total = ?, "
            "speed = ?, eta = ? WHERE id = ? AND state = 'running'",
            rows,
        )

    def write_logs(self, conn: sqlite3.Connection, rows: list[tuple[int, float, str, str]]) -> None:
        conn.executemany("INSERT INTO logs (task_id, at, level, message) VALUES (?, ?, ?, ?)", rows)

    def set_max_retries(self, conn: sqlite3.Connection, task_id: int, value: int) -> None:
        conn.execute("UPDATE tasks SET max_retries = ? WHERE id = ?", (value, task_id))

    # -- recovery -------------------------------------------------------------------------

    def recover_running(self, conn: sqlite3.Connection, now: float, crash_limit: int) -> dict[str, int]:
        """Tasks left running by a crash become pending (attempt unchanged); the ones a crash
        interrupted `crash_limit` times in a row fail instead."""
        counts = {"resumed": 0, "restarted": 0, "failed": 0}
        rows = conn.execute(
            "SELECT id, crash_count, checkpoint IS NOT NULL FROM tasks WHERE state = 'running'"
        ).fetchall()
        for task_id, crashes, has_checkpoint in rows:
            crashes += 1
            if crashes >= crash_limit:
                error = f"interrupted {crashes} times (the engine stopped abruptly while it ran)"
                conn.execute(
                    "UPDATE tasks SET state = 'failed', finished_at = ?, error = ?, crash_count = ?, "
                    "speed = NULL, eta = NULL WHERE id = ?",
                    (now, error, crashes, task_id),
                )
                self.sql.emit(conn, EventKind.FAILED, now, task_id, {"error": error, "crash": True})
                counts["failed"] += 1
                continue
            conn.execute(
                "UPDATE tasks SET state = CASE WHEN pause_reasons != 0 THEN 'paused' ELSE 'pending' END, "
                "crash_count = ?, speed = NULL, eta = NULL WHERE id = ?",
                (crashes, task_id),
            )
            counts["resumed" if has_checkpoint else "restarted"] += 1
        return counts


def pause_mask_from_db(conn: sqlite3.Connection) -> dict[str | None, int]:
    """Pause bits that a new task of each group gets (key None: tasks without a group)."""
    masks: dict[str | None, int] = {}
    row = conn.execute("SELECT value FROM settings WHERE name = 'paused_all'").fetchone()
    base = int(PauseReason.GLOBAL) if row and row[0] == "true" else 0
    masks[None] = base
    for (name,) in conn.execute("SELECT name FROM groups WHERE paused != 0"):
        masks[name] = base | PauseReason.GROUP
    return masks


def settings_get(conn: sqlite3.Connection) -> dict[str, Any]:
    import json

    return {name: json.loads(value) for name, value in conn.execute("SELECT name, value FROM settings")}


def settings_put(conn: sqlite3.Connection, name: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO settings (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, dumps(value)),
    )


def app_setting_put(conn: sqlite3.Connection, key: str, text: str | None) -> None:
    """Store (or, with None, delete) an app setting already encoded as JSON text."""
    if text is None:
        conn.execute("DELETE FROM settings WHERE name = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (key, text),
        )


def app_setting_get(conn: sqlite3.Connection, key: str) -> Any:
    import json

    row = conn.execute("SELECT value FROM settings WHERE name = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])
