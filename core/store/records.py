"""Row <-> record conversion: SQL results become our frozen records, never sqlite3.Row."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from core.clock import from_ts
from core.types import (
    JSON,
    Event,
    EventKind,
    IoCounts,
    LogLine,
    PauseReason,
    TaskRecord,
    TaskState,
)

TASK_COLUMNS = (
    "id, kind, payload, state, pause_reasons, priority, grp, label, dedup_key, parent_id, "
    "schedule_id, retry_of, attempt, max_retries, options, tags, created_at, run_at, started_at, "
    "finished_at, checkpoint, result, error, traceback, progress, progress_message, bytes_done, "
    "bytes_total, speed, eta, io_read, io_written, io_sent, io_received, run_seconds"
)
EVENT_COLUMNS = "seq, at, kind, task_id, schedule_id, scope, data"


def loads(text: str | None) -> JSON:
    return None if text is None else json.loads(text)


def reasons_of(mask: int) -> tuple[str, ...]:
    return PauseReason(mask).names if mask else ()


def task_from_row(row: sqlite3.Row | tuple[Any, ...], wait_reason: str | None = None) -> TaskRecord:
    (
        id_, kind, payload, state, reasons, priority, grp, label, key, parent_id,
        schedule_id, retry_of, attempt, max_retries, options, tags, created_at, run_at,
        started_at, finished_at, checkpoint, result, error, traceback, progress,
        progress_message, bytes_done, bytes_total, speed, eta, io_read, io_written, io_sent,
        io_received, run_seconds,
    ) = tuple(row)  # fmt: skip
    opts = loads(options) or {}
    st = TaskState(state)
    created = from_ts(created_at)
    assert created is not None
    return TaskRecord(
        id=id_,
        kind=kind,
        payload=loads(payload),
        state=st,
        pause_reasons=reasons_of(reasons),
        priority=priority,
        group=grp,
        tags=loads(tags) or {},
        label=label,
        key=key,
        parent_id=parent_id,
        schedule_id=schedule_id,
        retry_of=retry_of,
        attempt=attempt,
        max_retries=max_retries,
        error=error,
        traceback=traceback,
        result=loads(result),
        progress=progress,
        progress_message=progress_message,
        bytes_done=bytes_done,
        bytes_total=bytes_total,
        created_at=created,
        started_at=from_ts(started_at),
        finished_at=from_ts(finished_at),
        run_at=from_ts(run_at),
        duration=run_seconds if st.is_terminal and started_at is not None else None,
        io=IoCounts(read=io_read, written=io_written, sent=io_sent, received=io_received),
        speed=speed if st is TaskState.RUNNING else None,
        eta=eta if st is TaskState.RUNNING else None,
        timeout=opts.get("timeout"),
        ttl=opts.get("ttl"),
        resume_data=loads(checkpoint),
        wait_reason=wait_reason,
    )


def event_from_row(row: Sequence[Any]) -> Event:
    """An events row (data as JSON text, or as the dict it was written from)."""
    seq, at, kind, task_id, schedule_id, scope, data = row
    when = from_ts(at)
    assert when is not None
    if isinstance(data, str):
        data = json.loads(data)
    return Event(
        seq=seq,
        at=when,
        kind=EventKind(kind),
        task_id=task_id,
        schedule_id=schedule_id,
        scope=scope,
        data=data or {},
    )


def log_from_row(row: tuple[Any, ...]) -> LogLine:
    id_, task_id, at, level, message = row
    when = from_ts(at)
    assert when is not None
    return LogLine(id=id_, task_id=task_id, at=when, level=level, message=message)
