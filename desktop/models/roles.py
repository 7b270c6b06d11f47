"""Item data roles and column numbers shared by models, proxies, delegates and tests."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from PySide6.QtCore import Qt

_USER = int(Qt.ItemDataRole.UserRole)


class Role(IntEnum):
    TASK_ID = _USER + 1
    RECORD = _USER + 2
    PROGRESS = _USER + 3  # 0..1 or None
    CATEGORY = _USER + 4
    SORT = _USER + 5
    FINISHED = _USER + 6  # a finished row kept in the queue (greyed)
    SEARCH = _USER + 7  # text the search box matches


class QueueColumn(IntEnum):
    NAME = 0
    KIND = 1
    STATE = 2
    PRIORITY = 3
    PROGRESS = 4
    SPEED = 5
    ETA = 6
    GROUP = 7
    ADDED = 8


QUEUE_HEADERS = ("Name", "Kind", "State", "Priority", "Progress", "Speed", "ETA", "Group", "Added")


class HistoryColumn(IntEnum):
    NAME = 0
    KIND = 1
    RESULT = 2
    FINISHED = 3
    DURATION = 4
    OUTPUT = 5
    ATTEMPTS = 6
    REASON = 7
    ID = 8


HISTORY_HEADERS = ("Name", "Kind", "Result", "Finished", "Duration", "Output", "Attempts", "Reason", "ID")

MIME_TASK_IDS = "application/x-taskdeck-task-ids"


def row_runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows: one
    beginRemoveRows/endRemoveRows per run instead of one per row."""
    out: list[tuple[int, int]] = []
    for n in rows:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out
