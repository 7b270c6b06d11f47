"""History export: CSV for spreadsheets, JSON for scripts. Payload secrets are masked."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from core import TaskRecord
from desktop.vocabulary import mask_secrets

FIELDS = ("id", "name", "kind", "state", "created_at", "started_at", "finished_at", "duration_s",
          "attempts", "priority", "group", "error")  # fmt: skip


def _row(rec: TaskRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "name": rec.name,
        "kind": rec.kind,
        "state": rec.state.value,
        "created_at": rec.created_at.isoformat(),
        "started_at": rec.started_at.isoformat() if rec.started_at else None,
        "finished_at": rec.finished_at.isoformat() if rec.finished_at else None,
        "duration_s": round(rec.duration, 3) if rec.duration is not None else None,
        "attempts": rec.attempt,
        "priority": rec.priority,
        "group": rec.group,
        "error": rec.error,
    }


def to_csv(records: Iterable[TaskRecord]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: ("" if v is None else v) for k, v in _row(rec).items()})
    return buf.getvalue()


def to_json(records: Iterable[TaskRecord]) -> str:
    rows = []
    for rec in records:
        row = _row(rec)
        row["payload"] = mask_secrets(rec.payload)
        row["result"] = mask_secrets(rec.result)
        row["tags"] = rec.tags
        rows.append(row)
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
