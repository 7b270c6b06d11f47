"""The History pane's model: terminal tasks newest first, paged in as the view scrolls
(canFetchMore/fetchMore over `history(limit, offset)`), filtered by state, kind, date
and text. New terminal tasks arrive from the bridge and are inserted at the top; rows
the user cleared are hidden at once and deleted when the Undo toast expires."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from core import TaskRecord, TaskState
from desktop import theme
from desktop.bridge import Bridge, TaskBatch
from desktop.models.roles import HISTORY_HEADERS, HistoryColumn, Role, row_runs
from desktop.models.table import RowsModel
from desktop.vocabulary import category, display_name, first_line, format_duration, output_text, state_label

logger = logging.getLogger(__name__)
Index = QModelIndex | QPersistentModelIndex
PAGE = 200
_DISPLAY = Qt.ItemDataRole.DisplayRole


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    states: tuple[str, ...] = ()
    kind: str | None = None
    since: datetime | None = None
    search: str = ""

    @property
    def empty(self) -> bool:
        return not (self.states or self.kind or self.since or self.search)

    def matches(self, rec: TaskRecord) -> bool:
        if not rec.is_terminal:
            return False
        if self.states and rec.state.value not in self.states:
            return False
        if self.kind and rec.kind != self.kind:
            return False
        if self.since and (rec.finished_at is None or rec.finished_at < self.since):
            return False
        if self.search:
            text = self.search.lower()
            hay = " ".join(
                (rec.label or "", rec.kind, rec.error or "", json.dumps(rec.payload, ensure_ascii=False))
            ).lower()
            return text in hay or text.lstrip("#") == str(rec.id)
        return True


class HistoryModel(RowsModel):
    """Terminal tasks, newest first.

    Signals:
        fetching_changed(bool): a page is being read.
        rows_changed(): rows were added or removed (the pane's empty state follows it).
    """

    HEADERS = HISTORY_HEADERS

    fetching_changed = Signal(bool)
    rows_changed = Signal()

    def __init__(self, bridge: Bridge, parent: QObject | None = None, page: int = PAGE) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._page = page
        self._rows: list[TaskRecord] = []
        self._ids: set[int] = set()
        self._hidden: set[int] = set()  # cleared, waiting for the Undo toast to expire
        self._filter = HistoryFilter()
        self._offset = 0  # rows of the current query read from the database (hidden included)
        self._exhausted = False
        self._fetch: asyncio.Task[Any] | None = None
        self._generation = 0
        self._cap: int | None = None  # retention: keep at most this many (no filter)
        self._clock: Callable[[], datetime] = lambda: datetime.now().astimezone()

    # -- Qt interface -----------------------------------------------------------------------

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        rec = self._rows[index.row()]
        col = index.column()
        if role == _DISPLAY:
            return self._text(rec, col)
        if role == Role.TASK_ID:
            return rec.id
        if role == Role.RECORD:
            return rec
        if role == Role.CATEGORY:
            return category(rec).value
        if role == Qt.ItemDataRole.ToolTipRole:
            if col in (HistoryColumn.REASON, HistoryColumn.RESULT) and rec.error:
                return rec.error
            if col == HistoryColumn.FINISHED and rec.finished_at:
                return rec.finished_at.astimezone().strftime("%A %d %B %Y, %H:%M:%S")
            return None
        if role == Qt.ItemDataRole.ForegroundRole and col == HistoryColumn.RESULT:
            c = theme.colors()
            if rec.state in (TaskState.FAILED, TaskState.DEPENDENCY_FAILED):
                return c.failed
            if rec.state == TaskState.COMPLETED:
                return c.completed
            return c.muted
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (
            HistoryColumn.DURATION,
            HistoryColumn.ATTEMPTS,
            HistoryColumn.ID,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            result = self._text(rec, HistoryColumn.RESULT).lower()
            return f"{rec.name}, {result}, finished {self._text(rec, HistoryColumn.FINISHED)}"
        return None

    def _text(self, rec: TaskRecord, col: int) -> str:
        if col == HistoryColumn.NAME:
            return display_name(rec)
        if col == HistoryColumn.KIND:
            return rec.kind
        if col == HistoryColumn.RESULT:
            label = state_label(rec, self._clock())
            return "Failed" if rec.state == TaskState.FAILED else label
        if col == HistoryColumn.FINISHED:
            return rec.finished_at.astimezone().strftime("%Y-%m-%d %H:%M") if rec.finished_at else ""
        if col == HistoryColumn.DURATION:
            return format_duration(rec.duration)
        if col == HistoryColumn.OUTPUT:
            return output_text(rec.result)
        if col == HistoryColumn.ATTEMPTS:
            return str(rec.attempt)
        if col == HistoryColumn.REASON:
            return first_line(rec.error, 200)
        if col == HistoryColumn.ID:
            return str(rec.id)
        return ""

    def canFetchMore(self, parent: Index) -> bool:
        if parent.isValid() or self._exhausted:
            return False
        return not (self._cap is not None and self._filter.empty and len(self._rows) >= self._cap)

    def fetchMore(self, parent: Index) -> None:
        if parent.isValid() or self._fetch is not None or self._exhausted:
            return
        self._fetch = self._bridge.spawn(self._read_page(self._generation), "Reading history")

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows read so far (Finished toggles newest/oldest first)."""
        keys: dict[int, Callable[[TaskRecord], Any]] = {
            HistoryColumn.FINISHED: lambda r: (r.finished_at.timestamp() if r.finished_at else 0.0, r.id),
            HistoryColumn.DURATION: lambda r: r.duration or 0.0,
            HistoryColumn.ATTEMPTS: lambda r: r.attempt,
            HistoryColumn.ID: lambda r: r.id,
        }
        key = keys.get(column, lambda r: self._text(r, column).lower())
        self.layoutAboutToBeChanged.emit()
        old = {r.id: n for n, r in enumerate(self._rows)}
        self._rows.sort(key=key, reverse=order == Qt.SortOrder.DescendingOrder)
        new = {r.id: n for n, r in enumerate(self._rows)}
        for index in self.persistentIndexList():
            rec_id = next((i for i, n in old.items() if n == index.row()), None)
            if rec_id is not None:
                self.changePersistentIndex(index, self.index(new[rec_id], index.column()))
        self.layoutChanged.emit()

    # -- reading ----------------------------------------------------------------------------

    @property
    def filter(self) -> HistoryFilter:
        return self._filter

    @property
    def fetching(self) -> bool:
        return self._fetch is not None

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def records(self) -> list[TaskRecord]:
        return list(self._rows)

    def record_at(self, row: int) -> TaskRecord | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    async def _read_page(self, generation: int) -> None:
        self.fetching_changed.emit(True)
        try:
            f = self._filter
            recs = await self._bridge.history(
                states=f.states,
                kind=f.kind,
                since=f.since,
                search=f.search,
                limit=self._page,
                offset=self._offset,
            )
        finally:
            self._fetch = None
            self.fetching_changed.emit(False)
        if generation != self._generation:
            return
        self._offset += len(recs)
        if len(recs) < self._page:
            self._exhausted = True
        fresh = [r for r in recs if r.id not in self._ids and r.id not in self._hidden]
        if self._cap is not None and self._filter.empty:
            fresh = fresh[: max(0, self._cap - len(self._rows))]
        if fresh:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self._rows.extend(fresh)
            self._ids.update(r.id for r in fresh)
            self.endInsertRows()
            self.rows_changed.emit()

    def set_filter(self, f: HistoryFilter) -> None:
        """A new query: the rows go and the first page is read."""
        self._filter = f
        self.reload()

    def reload(self) -> None:
        self._generation += 1
        if self._fetch is not None:
            self._fetch.cancel()
            self._fetch = None
        if self._rows:
            self.beginRemoveRows(QModelIndex(), 0, len(self._rows) - 1)
            self._rows.clear()
            self._ids.clear()
            self.endRemoveRows()
            self.rows_changed.emit()
        self._offset = 0
        self._exhausted = False
        self.fetchMore(QModelIndex())

    def set_cap(self, keep: int | None) -> None:
        """Retention keeps `keep` entries: show no more (the engine prunes the rest)."""
        self._cap = keep
        if keep is not None and self._filter.empty and len(self._rows) > keep:
            self.beginRemoveRows(QModelIndex(), keep, len(self._rows) - 1)
            for r in self._rows[keep:]:
                self._ids.discard(r.id)
            del self._rows[keep:]
            self.endRemoveRows()
            self.rows_changed.emit()

    # -- changes ------------------------------------------------------------------------------

    def apply(self, batch: TaskBatch) -> None:
        if batch.history_reload:
            self.reload()
            return
        if batch.deleted:
            self._remove(batch.deleted)
            self._hidden -= batch.deleted
        arrived = sorted(
            (r for r in batch.upserts.values() if r.is_terminal and r.id not in self._ids),
            key=lambda r: (r.finished_at.timestamp() if r.finished_at else 0.0, r.id),
            reverse=True,
        )
        if arrived:
            self._offset += len(arrived)  # they are at the top of the query now
            shown = [r for r in arrived if self._filter.matches(r) and r.id not in self._hidden]
            if shown:
                self.beginInsertRows(QModelIndex(), 0, len(shown) - 1)
                self._rows[:0] = shown
                self._ids.update(r.id for r in shown)
                self.endInsertRows()
                self.set_cap(self._cap)
                self.rows_changed.emit()

    def _remove(self, ids: Iterable[int]) -> None:
        doomed = set(ids) & self._ids
        if not doomed:
            return
        rows = [n for n, r in enumerate(self._rows) if r.id in doomed]
        for start, stop in reversed(row_runs(rows)):
            self.beginRemoveRows(QModelIndex(), start, stop)
            del self._rows[start : stop + 1]
            self.endRemoveRows()
        self._ids -= doomed
        self.rows_changed.emit()

    def hide(self, ids: Sequence[int]) -> None:
        """Clear: the rows go now; `delete_history` follows when Undo is no longer offered."""
        self._hidden.update(ids)
        self._remove(ids)

    def unhide(self, ids: Sequence[int]) -> None:
        self._hidden.difference_update(ids)
        self.reload()
