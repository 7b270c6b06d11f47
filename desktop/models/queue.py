"""The Queue pane's model: active tasks in dispatch order as a tree (parents with their
parts), plus the tasks that finished during this session, greyed at the end of their
level until the user clears them (clearing never touches history).

Updates are row-precise: a bridge batch becomes dataChanged over contiguous rows,
beginMoveRows for reorders and for rows that finish, beginInsertRows for new tasks; never
a model reset, which would lose the selection and the scroll position."""

from __future__ import annotations

import bisect
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QPalette

from core import TaskRecord, TaskState
from desktop import theme
from desktop.bridge import Move, TaskBatch
from desktop.models.roles import MIME_TASK_IDS, QUEUE_HEADERS, QueueColumn, Role, row_runs
from desktop.vocabulary import (
    Category,
    EtaSmoother,
    category,
    display_name,
    format_eta,
    format_priority,
    format_rate,
    state_label,
    state_tooltip,
)

Index = QModelIndex | QPersistentModelIndex
ROOT = 0  # the key of the invisible root: task ids start at 1
_QUEUED = (TaskState.PENDING, TaskState.PAUSED)
_DISPLAY = Qt.ItemDataRole.DisplayRole


def _now() -> datetime:
    return datetime.now().astimezone()


class QueueModel(QAbstractItemModel):
    """Active tasks (and this session's finished ones) keyed by task id.

    Signals:
        counts_changed(): the per-category counts changed.
        reorder_requested(list[int], object): rows dropped before a task id (None: at the end).
        files_dropped(list[str]): files dropped on the queue.
        loaded(): the start-up pages are all in.
    """

    counts_changed = Signal()
    reorder_requested = Signal(object, object)
    files_dropped = Signal(object)
    loaded = Signal()

    def __init__(self, parent: QObject | None = None, clock: Callable[[], datetime] = _now) -> None:
        super().__init__(parent)
        self._clock = clock
        self._rec: dict[int, TaskRecord] = {}
        self._parent: dict[int, int] = {}  # id -> parent key (ROOT for top level)
        self._act: dict[int, list[int]] = {ROOT: []}  # parent key -> active ids, in order
        self._fin: dict[int, list[int]] = {ROOT: []}  # parent key -> finished ids, in order
        self._rows: dict[int, dict[int, int]] = {}  # parent key -> id -> row (a cache)
        self._orphans: dict[int, list[TaskRecord]] = {}  # loading: children before their parent
        self._counts: Counter[Category] = Counter()
        self._eta = EtaSmoother()
        self._eta_shown: dict[int, float | None] = {}
        self.is_loaded = False
        self._held = False
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()

    # -- lookups --------------------------------------------------------------------------

    def _ids(self, key: int) -> list[int]:
        return self._act.get(key, []) + self._fin.get(key, []) if key in self._fin else []

    def _id_at(self, key: int, row: int) -> int | None:
        act = self._act.get(key)
        if act is None:
            return None
        if 0 <= row < len(act):
            return act[row]
        fin = self._fin[key]
        j = row - len(act)
        return fin[j] if 0 <= j < len(fin) else None

    def _count(self, key: int) -> int:
        act = self._act.get(key)
        return 0 if act is None else len(act) + len(self._fin[key])

    def _row_of(self, task_id: int) -> int:
        key = self._parent[task_id]
        cache = self._rows.get(key)
        if cache is None:
            cache = {i: r for r, i in enumerate(self._ids(key))}
            self._rows[key] = cache
        return cache[task_id]

    def _dirty(self, key: int) -> None:
        self._rows.pop(key, None)

    def index_of(self, task_id: int, column: int = 0) -> QModelIndex:
        if task_id not in self._parent:
            return QModelIndex()
        return self.createIndex(self._row_of(task_id), column, self._parent[task_id])

    def _parent_index(self, key: int) -> QModelIndex:
        return QModelIndex() if key == ROOT else self.index_of(key)

    def task_id(self, index: Index) -> int | None:
        if not index.isValid():
            return None
        return self._id_at(int(index.internalId()), index.row())

    def record(self, task_id: int) -> TaskRecord | None:
        return self._rec.get(task_id)

    def records(self) -> Iterable[TaskRecord]:
        return self._rec.values()

    def top_level_ids(self) -> list[int]:
        return self._ids(ROOT)

    def children_ids(self, task_id: int) -> list[int]:
        return self._ids(task_id)

    def is_finished_row(self, task_id: int) -> bool:
        rec = self._rec.get(task_id)
        return rec is not None and rec.is_terminal

    def counts(self) -> dict[Category, int]:
        return dict(self._counts)

    def waiting_reasons(self, limit: int) -> dict[int, str | None]:
        """The wait reasons of the first `limit` top-level pending rows, in queue order: the
        ones worth re-reading, since a gate's refusal changes no state and sends no event."""
        out: dict[int, str | None] = {}
        for task_id in self._act[ROOT]:
            rec = self._rec[task_id]
            if rec.state == TaskState.PENDING:
                out[task_id] = rec.wait_reason
                if len(out) >= limit:
                    break
        return out

    def name_of(self, task_id: int) -> str | None:
        rec = self._rec.get(task_id)
        return rec.name if rec else None

    # -- Qt model interface ------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if not parent.isValid():
            return self._count(ROOT)
        if parent.column() != 0:
            return 0
        task_id = self.task_id(parent)
        return 0 if task_id is None else self._count(task_id)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(QUEUE_HEADERS)

    def hasChildren(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return self.rowCount(parent) > 0

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if column < 0 or column >= len(QUEUE_HEADERS) or row < 0:
            return QModelIndex()
        if parent.isValid():
            if parent.column() != 0:
                return QModelIndex()
            key = self.task_id(parent)
            if key is None:
                return QModelIndex()
        else:
            key = ROOT
        if row >= self._count(key):
            return QModelIndex()
        return self.createIndex(row, column, key)

    def parent(self, child: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not child.isValid():
            return QModelIndex()
        key = int(child.internalId())
        if key == ROOT or key not in self._parent:
            return QModelIndex()
        return self.createIndex(self._row_of(key), 0, self._parent[key])

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(QUEUE_HEADERS):
            if role == Qt.ItemDataRole.DisplayRole:
                return QUEUE_HEADERS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in (
                QueueColumn.SPEED,
                QueueColumn.ETA,
                QueueColumn.PROGRESS,
            ):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsDropEnabled
        if not index.isValid():
            return base
        flags = base | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        task_id = self.task_id(index)
        rec = self._rec.get(task_id) if task_id is not None else None
        if rec is not None and rec.state in _QUEUED:
            flags |= Qt.ItemFlag.ItemIsDragEnabled
        return flags

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        task_id = self.task_id(index)
        if task_id is None:
            return None
        rec = self._rec[task_id]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(rec, col)
        if role == Role.TASK_ID:
            return task_id
        if role == Role.RECORD:
            return rec
        if role == Role.PROGRESS:
            return (
                rec.progress
                if rec.progress is not None
                else (1.0 if rec.state == TaskState.COMPLETED else None)
            )
        if role == Role.CATEGORY:
            return category(rec).value
        if role == Role.FINISHED:
            return rec.is_terminal
        if role == Role.SEARCH:
            return f"{rec.name} {rec.kind} #{rec.id} {rec.group or ''}".lower()
        if role == Role.SORT:
            return self._sort_key(rec, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == QueueColumn.STATE:
                label = self._state(rec)
                by = None
                if rec.preempted_by is not None:
                    by = f"#{rec.preempted_by}"
                    if (who := self.name_of(rec.preempted_by)) is not None:
                        by += f" “{who}”"
                tip = state_tooltip(label, rec.wait_reason, by)
                return label if tip == label else f"{label}\n{tip}"
            if col == QueueColumn.NAME:
                return f"#{rec.id} {rec.name}" + (f"\n{rec.progress_message}" if rec.progress_message else "")
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            c = theme.colors()
            if col == QueueColumn.STATE:
                if rec.state in (TaskState.FAILED, TaskState.DEPENDENCY_FAILED):
                    return c.failed
                if rec.is_terminal:
                    return c.muted
                if rec.state == TaskState.RUNNING:
                    return c.running
                if rec.state == TaskState.PAUSED:
                    return c.paused
            if rec.is_terminal:
                return QGuiApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (
            QueueColumn.SPEED,
            QueueColumn.ETA,
            QueueColumn.PRIORITY,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self.accessible_text(rec)
        return None

    def _state(self, rec: TaskRecord) -> str:
        now = self._clock()
        if rec.state == TaskState.PENDING and not (rec.run_at is not None and rec.run_at > now):
            # the hold switch changes why every queued task waits; events name only the switch
            held = (rec.wait_reason or "").startswith("queue held")
            if self._held and not held:
                rec = dataclasses.replace(rec, wait_reason="queue held (stop after current)")
            elif held and not self._held:
                rec = dataclasses.replace(rec, wait_reason="waiting for a slot")
        return state_label(rec, now, _Names(self))

    def set_held(self, held: bool) -> None:
        """The engine's hold switch ("stop after current") changed: queued rows say so."""
        if held == self._held:
            return
        self._held = held
        for key in list(self._act):
            n = len(self._act[key])
            if n and (key == ROOT or key in self._parent):
                parent = self._parent_index(key)
                self.dataChanged.emit(
                    self.index(0, QueueColumn.STATE, parent), self.index(n - 1, QueueColumn.STATE, parent)
                )

    def _text(self, rec: TaskRecord, col: int) -> str:
        if col == QueueColumn.NAME:
            return display_name(rec)
        if col == QueueColumn.KIND:
            return rec.kind
        if col == QueueColumn.STATE:
            return self._state(rec)
        if col == QueueColumn.PRIORITY:
            return format_priority(rec.priority)
        if col == QueueColumn.PROGRESS:
            p = (
                rec.progress
                if rec.progress is not None
                else (1.0 if rec.state == TaskState.COMPLETED else None)
            )
            return "" if p is None else f"{int(p * 100)} %"
        if col == QueueColumn.SPEED:
            return format_rate(rec)
        if col == QueueColumn.ETA:
            running = rec.state == TaskState.RUNNING
            return format_eta(self._eta.shown(rec.id, time.monotonic()), running) if running else ""
        if col == QueueColumn.GROUP:
            return rec.group or ""
        if col == QueueColumn.ADDED:
            return _short_time(rec.created_at, self._clock())
        return ""

    def _sort_key(self, rec: TaskRecord, col: int) -> Any:
        if col == QueueColumn.PRIORITY:
            return rec.priority
        if col == QueueColumn.PROGRESS:
            return rec.progress if rec.progress is not None else -1.0
        if col == QueueColumn.SPEED:
            return rec.speed or 0.0
        if col == QueueColumn.ETA:
            return self._eta_shown.get(rec.id) or 0.0
        if col == QueueColumn.ADDED:
            return rec.created_at.timestamp()
        return self._text(rec, col).lower()

    def accessible_text(self, rec: TaskRecord) -> str:
        """What a screen reader says for the row (ux A-13)."""
        parts = [rec.name, self._state(rec).lower()]
        if rec.progress is not None and not rec.is_terminal:
            parts.append(f"{int(rec.progress * 100)} percent")
        rate = format_rate(rec)
        if rate:
            parts.append(rate.replace("/s", " per second"))
        eta = self._eta.shown(rec.id, time.monotonic()) if rec.state == TaskState.RUNNING else None
        if eta is not None:
            parts.append(f"about {format_eta(eta, True)} left")
        return ", ".join(parts)

    # -- drag and drop ------------------------------------------------------------------------

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction | Qt.DropAction.CopyAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME_TASK_IDS, "text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        ids: list[int] = []
        for index in indexes:
            task_id = self.task_id(index)
            if task_id is not None and task_id not in ids:
                ids.append(task_id)
        mime = QMimeData()
        mime.setData(MIME_TASK_IDS, QByteArray(json.dumps(ids).encode()))
        return mime

    def canDropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        return data.hasUrls() or data.hasFormat(MIME_TASK_IDS)

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        if data.hasUrls():
            paths = [u.toLocalFile() for u in data.urls() if u.isLocalFile()]
            if paths:
                self.files_dropped.emit(paths)
            return bool(paths)
        if not data.hasFormat(MIME_TASK_IDS):
            return False
        try:
            ids = [int(i) for i in json.loads(bytes(data.data(MIME_TASK_IDS).data()).decode())]
        except (ValueError, TypeError):
            return False
        before = self._drop_target(row, parent)
        ids = [i for i in ids if i != before and (r := self._rec.get(i)) is not None and r.state in _QUEUED]
        if ids:
            self.reorder_requested.emit(ids, before)
        return False  # the rows move when the engine says they moved

    def _drop_target(self, row: int, parent: Index) -> int | None:
        """The queued task a drop lands before (None: the end of the queue)."""
        if row < 0:  # dropped onto a row: before it
            return self.task_id(parent) if parent.isValid() else None
        key = self.task_id(parent) if parent.isValid() else ROOT
        ids = self._act.get(key if key is not None else ROOT, [])
        for task_id in ids[row:]:
            if self._rec[task_id].state in _QUEUED:
                return task_id
        return None

    # -- applying changes ----------------------------------------------------------------------

    def add_page(self, records: Sequence[TaskRecord], last: bool) -> None:
        """Start-up: a page of active tasks in dispatch order (appended)."""
        roots: list[TaskRecord] = []
        kids: dict[int, list[TaskRecord]] = {}
        for rec in records:
            if rec.id in self._rec or rec.is_terminal:
                continue  # an event already brought a fresher record
            if rec.parent_id is not None and rec.parent_id not in self._rec:
                if any(r.id == rec.parent_id for r in roots) or rec.parent_id in kids:
                    kids.setdefault(rec.parent_id, []).append(rec)
                else:
                    self._orphans.setdefault(rec.parent_id, []).append(rec)
                continue
            if rec.parent_id is not None:
                kids.setdefault(rec.parent_id, []).append(rec)
            else:
                roots.append(rec)
        if last:
            for waiting in self._orphans.values():
                roots.extend(waiting)
            self._orphans.clear()
        if roots:
            self._append(ROOT, roots)
        for pid, recs in kids.items():
            if pid in self._rec or any(r.id == pid for r in roots):
                self._append(pid, recs)
        for rec in roots:
            waiting = self._orphans.pop(rec.id, [])
            if waiting:
                self._append(rec.id, waiting)
        if roots or kids:
            self.counts_changed.emit()
        if last and not self.is_loaded:
            self.is_loaded = True
            self.loaded.emit()

    def _append(self, key: int, recs: Sequence[TaskRecord]) -> None:
        act = self._act[key]
        first = len(act)
        self.beginInsertRows(self._parent_index(key), first, first + len(recs) - 1)
        for rec in recs:
            self._adopt(rec, key)
            act.append(rec.id)
        self._dirty(key)
        # finished rows sit after the active ones: appending active rows shifts them
        self.endInsertRows()

    def _adopt(self, rec: TaskRecord, key: int) -> None:
        self._rec[rec.id] = rec
        self._parent[rec.id] = key
        self._act.setdefault(rec.id, [])
        self._fin.setdefault(rec.id, [])
        self._counts[category(rec)] += 1 if key == ROOT else 0

    def apply(self, batch: TaskBatch) -> None:
        """Apply a bridge batch with row-precise signals."""
        changed: set[int] = set()
        counts_before = Counter(self._counts)
        now = time.monotonic()
        for task_id, data in batch.progress.items():
            rec = self._rec.get(task_id)
            if rec is None or rec.is_terminal:
                continue
            rec = dataclasses.replace(
                rec,
                progress=data.get("progress"),
                progress_message=data.get("message"),
                bytes_done=data.get("done"),
                bytes_total=data.get("total"),
                speed=data.get("speed"),
                eta=data.get("eta"),
            )
            self._rec[task_id] = rec
            self._update_eta(rec, now)
            changed.add(task_id)
        old: dict[int, TaskRecord] = {}
        new: list[TaskRecord] = []
        for task_id, rec in batch.upserts.items():
            prev = self._rec.get(task_id)
            if prev is None:
                new.append(rec)
                continue
            old[task_id] = prev
            self._rec[task_id] = rec
            if self._parent[task_id] == ROOT:
                self._counts[category(prev)] -= 1
                self._counts[category(rec)] += 1
            self._update_eta(rec, now)
            changed.add(task_id)
        moved: set[int] = set()
        for move in batch.moves:
            if self._apply_move(move):
                moved.add(move.task_id)
        for task_id, prev in old.items():
            rec = self._rec[task_id]
            if rec.is_terminal and not prev.is_terminal:
                self._finish_row(task_id)
            elif not rec.is_terminal and rec.priority != prev.priority and task_id not in moved:
                self._reposition(task_id)
        for rec in sorted(new, key=lambda r: r.id):
            if rec.is_terminal:
                self._insert_finished(rec)  # it started and ended between two flushes
            else:
                self._insert(rec)
        self._emit_changed(changed)
        if self._counts != counts_before:
            self.counts_changed.emit()

    def _update_eta(self, rec: TaskRecord, now: float) -> None:
        if rec.state != TaskState.RUNNING:
            self._eta.forget(rec.id)
            self._eta_shown.pop(rec.id, None)
            return
        elapsed = None
        if rec.started_at is not None:
            elapsed = (self._clock() - rec.started_at).total_seconds()
        self._eta_shown[rec.id] = self._eta.update(rec.id, rec.eta, elapsed, now)

    def _emit_changed(self, ids: Iterable[int]) -> None:
        by_key: dict[int, list[int]] = {}
        for task_id in ids:
            key = self._parent.get(task_id)
            if key is not None:
                by_key.setdefault(key, []).append(self._row_of(task_id))
        last = len(QUEUE_HEADERS) - 1
        for key, rows in by_key.items():
            rows.sort()
            parent = self._parent_index(key)
            start = prev = rows[0]
            for r in [*rows[1:], None]:
                if r is not None and r == prev + 1:
                    prev = r
                    continue
                self.dataChanged.emit(self.index(start, 0, parent), self.index(prev, last, parent))
                if r is not None:
                    start = prev = r

    def _move_within(self, task_id: int, target: int) -> bool:
        """Move an active row to position `target` of its level (counted without it)."""
        key = self._parent[task_id]
        act = self._act[key]
        src = act.index(task_id)
        target = max(0, min(target, len(act) - 1))
        if target == src:
            return False
        dest = target + 1 if target > src else target  # Qt counts the destination before the move
        parent = self._parent_index(key)
        if not self.beginMoveRows(parent, src, src, parent, dest):
            return False
        act.pop(src)
        act.insert(target, task_id)
        self._dirty(key)
        self.endMoveRows()
        return True

    def _apply_move(self, move: Move) -> bool:
        rec = self._rec.get(move.task_id)
        if rec is None or rec.is_terminal:
            return False
        key = self._parent[move.task_id]
        others = [i for i in self._act[key] if i != move.task_id]
        if move.before is not None:
            if move.before not in others:
                return False
            target = others.index(move.before)
        elif move.to == "top":
            p = rec.priority
            target = next(
                (
                    n
                    for n, i in enumerate(others)
                    if self._rec[i].priority > p
                    or (self._rec[i].priority == p and self._rec[i].state in _QUEUED)
                ),
                len(others),
            )
        elif move.to == "bottom":
            p = rec.priority
            target = bisect.bisect_right(others, p, key=lambda i: self._rec[i].priority)
        else:
            return False
        return self._move_within(move.task_id, target)

    def _reposition(self, task_id: int) -> None:
        """A task's priority changed without a move: its place follows its priority
        (within the priority, tasks that were never moved keep id order)."""
        rec = self._rec[task_id]
        key = self._parent[task_id]
        others = [i for i in self._act[key] if i != task_id]
        target = bisect.bisect_left(others, (rec.priority, rec.id), key=lambda i: (self._rec[i].priority, i))
        self._move_within(task_id, target)

    def _finish_row(self, task_id: int) -> None:
        """An active row ended: it moves, greyed, to the end of its level."""
        key = self._parent[task_id]
        act, fin = self._act[key], self._fin[key]
        src = act.index(task_id)
        parent = self._parent_index(key)
        dest = len(act) + len(fin)
        if src != dest - 1:
            if not self.beginMoveRows(parent, src, src, parent, dest):
                return
            act.pop(src)
            fin.append(task_id)
            self._dirty(key)
            self.endMoveRows()
        else:
            act.pop(src)
            fin.append(task_id)
            self._dirty(key)
        self._eta.forget(task_id)

    def _insert(self, rec: TaskRecord) -> None:
        key = rec.parent_id if rec.parent_id is not None and rec.parent_id in self._rec else ROOT
        act = self._act[key]
        row = bisect.bisect_right(act, rec.priority, key=lambda i: self._rec[i].priority)
        self.beginInsertRows(self._parent_index(key), row, row)
        act.insert(row, rec.id)
        self._adopt(rec, key)
        self._dirty(key)
        self.endInsertRows()

    def _insert_finished(self, rec: TaskRecord) -> None:
        key = rec.parent_id if rec.parent_id is not None and rec.parent_id in self._rec else ROOT
        fin = self._fin[key]
        row = len(self._act[key]) + len(fin)
        self.beginInsertRows(self._parent_index(key), row, row)
        fin.append(rec.id)
        self._adopt(rec, key)
        self._dirty(key)
        self.endInsertRows()

    def clear_finished(self, only: Category | None = None) -> int:
        """Take this session's finished rows out of the queue (history keeps them);
        `only` a category (Clear completed). Returns how many top-level rows went."""
        gone = 0
        for key in [k for k, fin in self._fin.items() if fin]:
            if key != ROOT and key not in self._parent:
                continue
            if key != ROOT and not self._rec[key].is_terminal and only is None:
                continue  # a running parent keeps its finished parts in view
            fin = self._fin[key]
            keep = [i for i in fin if only is not None and category(self._rec[i]) != only]
            if len(keep) == len(fin):
                continue
            parent = self._parent_index(key)
            base = len(self._act[key])
            # remove contiguous runs from the end so earlier row numbers stay valid
            doomed = [n for n, i in enumerate(fin) if i not in keep]
            for start, stop in reversed(row_runs(doomed)):
                self.beginRemoveRows(parent, base + start, base + stop)
                for i in fin[start : stop + 1]:
                    if key == ROOT:
                        gone += 1
                        self._counts[category(self._rec[i])] -= 1
                    self._forget(i)
                del fin[start : stop + 1]
                self._dirty(key)
                self.endRemoveRows()
        if gone:
            self.counts_changed.emit()
        return gone

    def _forget(self, task_id: int) -> None:
        for kid in self._act.pop(task_id, []) + self._fin.pop(task_id, []):
            self._forget(kid)
        self._rec.pop(task_id, None)
        self._parent.pop(task_id, None)
        self._rows.pop(task_id, None)
        self._eta.forget(task_id)
        self._eta_shown.pop(task_id, None)

    def stop(self) -> None:
        self._ticker.stop()

    def _tick(self) -> None:
        """Once a second: countdowns ("Retrying in 12 s") and ETAs move on."""
        now = self._clock()
        ids = [
            i
            for i, r in self._rec.items()
            if r.state == TaskState.RUNNING or (r.run_at is not None and r.run_at > now and not r.is_terminal)
        ]
        if len(ids) > 2000:
            return  # a huge backlog of scheduled tasks: their countdowns refresh with events
        if ids:
            self._emit_changed(ids)


class _Names:
    """Task id -> name, for "Blocked — waiting for “fetch”" (a Mapping's get is enough)."""

    def __init__(self, model: QueueModel) -> None:
        self._model = model

    def get(self, task_id: int, default: str | None = None, /) -> str | None:
        return self._model.name_of(task_id) or default


def _short_time(when: datetime, now: datetime) -> str:
    local = when.astimezone()
    if local.date() == now.astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%d %b %H:%M")
