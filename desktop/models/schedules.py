"""The Schedules pane's models: the schedules (one row each, keyed by id, updated row by
row as the bridge reports changes) and the runs of the selected schedule."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import QApplication, QStyle

from core import Schedule, TaskRecord, TaskState
from desktop import theme
from desktop.models.table import RowsModel
from desktop.vocabulary import first_line, format_duration, trigger_tag

Index = QModelIndex | QPersistentModelIndex
_DISPLAY = Qt.ItemDataRole.DisplayRole
SCHEDULE_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1


class ScheduleColumn(IntEnum):
    ENABLED = 0
    NAME = 1
    SCHEDULE = 2
    NEXT_RUN = 3
    LAST_RESULT = 4
    RUNS = 5
    MISSED = 6


SCHEDULE_HEADERS = ("On", "Name", "Schedule", "Next run", "Last result", "Runs", "Missed runs")

RESULT_WORDS = {
    TaskState.COMPLETED.value: "Completed",
    TaskState.FAILED.value: "Failed",
    TaskState.CANCELLED.value: "Cancelled",
    TaskState.EXPIRED.value: "Expired",
    TaskState.SUPERSEDED.value: "Replaced",
    TaskState.DEPENDENCY_FAILED.value: "Dependency failed",
    TaskState.SKIPPED.value: "Skipped",
}


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def short_when(when: datetime, now: datetime) -> str:
    """09:00 today, "Wed 09:00" within a week, else "2026-01-14 09:00" (local time)."""
    local, today = when.astimezone(), now.astimezone()
    if local.date() == today.date():
        return f"{local:%H:%M}"
    if 0 < (local.date() - today.date()).days < 7 or 0 < (today.date() - local.date()).days < 7:
        return f"{local:%a %H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def countdown(seconds: float) -> str:
    """ "in 42 s", "in 3 min", "in 2 h 05 min", "in 3 days"."""
    if seconds <= 0:
        return "due now"
    if seconds >= 2 * 86400:
        return f"in {int(seconds // 86400)} days"
    return f"in {format_duration(seconds, coarse=True)}"


def schedule_name(s: Schedule) -> str:
    return s.name or f"{s.kind} #{s.id}"


def next_run_text(s: Schedule, now: datetime) -> str:
    if s.paused:
        return "Paused"
    if s.ended or s.next_fire is None:
        return "Ended"
    return f"{short_when(s.next_fire, now)} ({countdown((s.next_fire - now).total_seconds())})"


def last_result_text(s: Schedule, now: datetime, active: str = "") -> str:
    """The last run's outcome and time; "Running now" / "Waiting to run" while one is
    active (`active`: "running", "waiting" or "")."""
    if active == "running":
        return "Running now"
    if active == "waiting":
        return "Waiting to run"
    if s.last_result is None:
        return "Never run"
    word = RESULT_WORDS.get(s.last_result, capital(s.last_result))
    return f"{word} {short_when(s.last_finished, now)}" if s.last_finished else word


def missed_text(s: Schedule) -> str:
    """ "Missed 2 runs — ran once at 08:00" / "Missed 2 runs — skipped" (the engine's note)."""
    return capital(s.missed_note) if s.missed_note else ""


def trigger_words(s: Schedule) -> str:
    text = capital(s.trigger_text)
    return f"{text} ({s.tz})" if s.tz else text


def run_result_text(rec: TaskRecord) -> str:
    """A run's outcome in words; a fire skipped by the overlap policy says why."""
    if rec.state == TaskState.SKIPPED:
        if "still active" in (rec.error or ""):
            return "Skipped — previous run still active"
        return "Skipped — a run is active and another already waits"
    if not rec.is_terminal:
        return capital(rec.state.value)
    return RESULT_WORDS.get(rec.state.value, capital(rec.state.value))


def _result_icon(state: str | None) -> Any:
    style = QApplication.style()
    pixmap = {
        TaskState.COMPLETED.value: QStyle.StandardPixmap.SP_DialogApplyButton,
        TaskState.FAILED.value: QStyle.StandardPixmap.SP_MessageBoxCritical,
        TaskState.SKIPPED.value: QStyle.StandardPixmap.SP_MessageBoxInformation,
    }.get(state or "", QStyle.StandardPixmap.SP_MessageBoxWarning if state else None)
    return style.standardIcon(pixmap) if pixmap is not None and style is not None else None


class ScheduleModel(RowsModel):
    """Schedules in the order they were added.

    Signals:
        enabled_requested(int, bool): the user ticked or cleared a row's Enabled box
            (the row changes when the engine reports the change).
    """

    HEADERS = SCHEDULE_HEADERS

    enabled_requested = Signal(int, bool)

    def __init__(self, clock: Callable[[], datetime], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._clock = clock
        self._rows: list[Schedule] = []
        self._row_of: dict[int, int] = {}
        self._active: dict[int, dict[int, bool]] = {}  # schedule id -> its active runs: running?

    # -- contents -------------------------------------------------------------------------

    def reset(self, schedules: Iterable[Schedule]) -> None:
        self.beginResetModel()
        self._rows = sorted(schedules, key=lambda s: s.id)
        self._reindex()
        self.endResetModel()

    def _reindex(self) -> None:
        self._row_of = {s.id: i for i, s in enumerate(self._rows)}

    def upsert(self, s: Schedule) -> None:
        row = self._row_of.get(s.id)
        if row is None:
            row = len(self._rows)
            self.beginInsertRows(QModelIndex(), row, row)
            self._rows.append(s)
            self._row_of[s.id] = row
            self.endInsertRows()
            return
        self._rows[row] = s
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(SCHEDULE_HEADERS) - 1))

    def remove(self, schedule_id: int) -> None:
        row = self._row_of.get(schedule_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self._reindex()
        self.endRemoveRows()

    def note_runs(self, records: Iterable[TaskRecord]) -> None:
        """Runs of schedules that started, moved on or ended (Last result follows them)."""
        touched: set[int] = set()
        for rec in records:
            if rec.schedule_id is None:
                continue
            runs = self._active.setdefault(rec.schedule_id, {})
            if rec.is_terminal or rec.state == TaskState.SKIPPED:
                if runs.pop(rec.id, None) is None:
                    continue
            else:
                running = rec.state == TaskState.RUNNING
                if runs.get(rec.id) == running:
                    continue
                runs[rec.id] = running
            touched.add(rec.schedule_id)
        for sid in touched:
            row = self._row_of.get(sid)
            if row is not None:
                i = self.index(row, ScheduleColumn.LAST_RESULT)
                self.dataChanged.emit(i, i)

    def active(self, schedule_id: int) -> str:
        runs = self._active.get(schedule_id)
        if not runs:
            return ""
        return "running" if any(runs.values()) else "waiting"

    def tick(self) -> None:
        """Countdowns moved on: repaint the Next run column."""
        if self._rows:
            col = ScheduleColumn.NEXT_RUN
            self.dataChanged.emit(self.index(0, col), self.index(len(self._rows) - 1, col), [_DISPLAY])

    def schedule(self, schedule_id: int) -> Schedule | None:
        row = self._row_of.get(schedule_id)
        return self._rows[row] if row is not None else None

    def schedule_at(self, row: int) -> Schedule | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, schedule_id: int) -> int | None:
        return self._row_of.get(schedule_id)

    def ids(self) -> list[int]:
        return [s.id for s in self._rows]

    def text(self, schedule_id: int, col: int) -> str:
        row = self._row_of.get(schedule_id)
        return "" if row is None else str(self.index(row, col).data() or "")

    # -- Qt -------------------------------------------------------------------------------

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == ScheduleColumn.ENABLED:
            f |= Qt.ItemFlag.ItemIsUserCheckable
        return f

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        s = self._rows[index.row()]
        col = index.column()
        if role == _DISPLAY:
            return self._text(s, col)
        if role == Qt.ItemDataRole.CheckStateRole and col == ScheduleColumn.ENABLED:
            return Qt.CheckState.Unchecked if s.paused else Qt.CheckState.Checked
        if role == Qt.ItemDataRole.DecorationRole and col == ScheduleColumn.LAST_RESULT:
            return None if self.active(s.id) else _result_icon(s.last_result)
        if role == Qt.ItemDataRole.ForegroundRole:
            c = theme.colors()
            if col == ScheduleColumn.NEXT_RUN and (s.paused or s.ended):
                return c.muted
            if col == ScheduleColumn.LAST_RESULT and s.last_result == TaskState.FAILED.value:
                return c.failed
            if col == ScheduleColumn.MISSED and s.missed_note:
                return c.failed
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == ScheduleColumn.ENABLED:
                return "Click to resume" if s.paused else "Click to pause"
            if col == ScheduleColumn.NEXT_RUN and s.next_fire is not None and not s.paused:
                return s.next_fire.astimezone().strftime("%A %Y-%m-%d %H:%M:%S %Z")
            if col == ScheduleColumn.SCHEDULE and s.cron:
                return s.cron
            return self._text(s, col) or None
        if role == Qt.ItemDataRole.AccessibleTextRole:
            now = self._clock()
            state = "paused" if s.paused else f"next run {next_run_text(s, now)}"
            last = last_result_text(s, now, self.active(s.id))
            return f"{schedule_name(s)}, {trigger_words(s)}, {state}, last result {last}"
        if role == SCHEDULE_ID_ROLE:
            return s.id
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or index.column() != ScheduleColumn.ENABLED:
            return False
        if role != Qt.ItemDataRole.CheckStateRole:
            return False
        s = self._rows[index.row()]
        on = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
        if on == (not s.paused):
            return False
        self.enabled_requested.emit(s.id, on)
        return True

    def _text(self, s: Schedule, col: int) -> str:
        now = self._clock()
        if col == ScheduleColumn.ENABLED:
            return ""
        if col == ScheduleColumn.NAME:
            return schedule_name(s)
        if col == ScheduleColumn.SCHEDULE:
            return trigger_words(s)
        if col == ScheduleColumn.NEXT_RUN:
            return next_run_text(s, now)
        if col == ScheduleColumn.LAST_RESULT:
            return last_result_text(s, now, self.active(s.id))
        if col == ScheduleColumn.RUNS:
            return str(s.run_count)
        if col == ScheduleColumn.MISSED:
            return missed_text(s)
        return ""


class RunColumn(IntEnum):
    WHEN = 0
    TRIGGER = 1
    RESULT = 2
    DURATION = 3
    DETAIL = 4
    ID = 5


RUN_HEADERS = ("When", "Started by", "Result", "Duration", "Detail", "ID")


class ScheduleRunsModel(RowsModel):
    """The runs of one schedule: active ones first, then history newest first."""

    HEADERS = RUN_HEADERS

    def __init__(self, clock: Callable[[], datetime], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._clock = clock
        self._rows: list[TaskRecord] = []

    def set_runs(self, runs: Iterable[TaskRecord]) -> None:
        self.beginResetModel()  # a short list, replaced whole when its schedule changes
        self._rows = list(runs)
        self.endResetModel()

    def record_at(self, row: int) -> TaskRecord | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def texts(self, col: int) -> list[str]:
        return [self._text(r, col) for r in self._rows]

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        rec = self._rows[index.row()]
        col = index.column()
        if role in (_DISPLAY, Qt.ItemDataRole.ToolTipRole):
            return self._text(rec, col)
        if role == Qt.ItemDataRole.DecorationRole and col == RunColumn.RESULT:
            return _result_icon(rec.state.value if rec.is_terminal else None)
        if role == Qt.ItemDataRole.ForegroundRole and col == RunColumn.RESULT:
            c = theme.colors()
            if rec.state == TaskState.FAILED:
                return c.failed
            if rec.state == TaskState.SKIPPED:
                return c.muted
            return None
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"Run {rec.id}, {self._text(rec, RunColumn.WHEN)}, {self._text(rec, RunColumn.RESULT)}"
        if role == SCHEDULE_ID_ROLE:
            return rec.id
        return None

    def _text(self, rec: TaskRecord, col: int) -> str:
        if col == RunColumn.WHEN:
            return short_when(rec.created_at, self._clock())
        if col == RunColumn.TRIGGER:
            return {"manual": "Run now", "catch-up": "Catch-up"}.get(trigger_tag(rec), "Schedule")
        if col == RunColumn.RESULT:
            return run_result_text(rec)
        if col == RunColumn.DURATION:
            return format_duration(rec.duration) if rec.state != TaskState.SKIPPED else ""
        if col == RunColumn.DETAIL:
            return "" if rec.state == TaskState.SKIPPED else first_line(rec.error)
        if col == RunColumn.ID:
            return f"#{rec.id}"
        return ""
