"""The weekly bandwidth-limit grid (ux S-09): days × hours → a limit, stored through the
engine's `set_bandwidth_schedule` as windows ("mon-fri 09:00–17:00 → 200 KB/s"), and the
status line that says which limit is in force and until when."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core import BandwidthStatus, BandwidthWindow
from desktop import theme
from desktop.views.widgets import name

Index = QModelIndex | QPersistentModelIndex
DAY_TITLES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
KB = 1000  # KB/s as format_bytes counts: 1 KB = 1000 bytes
Grid = list[list[float | None]]  # [day][hour] -> bytes/s, None: no scheduled limit


def format_limit(bps: float | None) -> str:
    if bps is None:
        return "Unlimited"
    if bps >= 1_000_000 and bps % 100_000 == 0:
        return f"{bps / 1_000_000:g} MB/s"
    return f"{bps / KB:g} KB/s"


def grid_from_windows(windows: Iterable[BandwidthWindow]) -> Grid:
    """The hours each window covers (a window that starts or ends mid-hour covers the
    hours it touches), the most restrictive limit where windows overlap."""
    grid: Grid = [[None] * 24 for _ in range(7)]
    covered = [[False] * 24 for _ in range(7)]
    for w in windows:
        for day in range(7):
            for hour in range(24):
                probe = datetime(2026, 1, 5 + day, hour, 30)  # 2026-01-05 is a Monday
                if not any(w.covers(probe + timedelta(minutes=m)) for m in (-30, 0, 29)):
                    continue
                if w.bps is None:
                    covered[day][hour] = True
                    continue
                old = grid[day][hour]
                grid[day][hour] = w.bps if old is None else min(old, w.bps)
    return grid


def windows_from_grid(grid: Grid) -> list[tuple[list[int], str, str, float]]:
    """Runs of equal limits per day, merged across days that share them:
    [([0, 1, 2, 3, 4], "09:00", "17:00", 200000.0)]."""
    runs: dict[tuple[int, int, float], list[int]] = {}
    for day in range(7):
        hour = 0
        while hour < 24:
            bps = grid[day][hour]
            if bps is None:
                hour += 1
                continue
            end = hour
            while end < 24 and grid[day][end] == bps:
                end += 1
            runs.setdefault((hour, end, bps), []).append(day)
            hour = end
    return [
        (days, f"{start:02d}:00", "24:00" if end == 24 else f"{end:02d}:00", bps)
        for (start, end, bps), days in sorted(runs.items(), key=lambda kv: (kv[1][0], kv[0]))
    ]


def status_text(status: BandwidthStatus, now: datetime) -> str:
    """ "Limit 200 KB/s (scheduled until 17:00)", "Unlimited — override until 17:00"."""
    limit = format_limit(status.limit)
    prefix = "Unlimited" if status.limit is None else f"Limit {limit}"
    if status.source.startswith("until"):
        return f"{prefix} — override {status.source}"
    if status.source == "schedule":
        end = _window_end(status, now)
        return f"{prefix} (scheduled until {end:%H:%M})" if end is not None else f"{prefix} (scheduled)"
    return prefix


def _window_end(status: BandwidthStatus, now: datetime) -> datetime | None:
    """When the scheduled limit in force now stops applying: the first window edge (a
    start or an end, in the next eight days) after which the limit differs."""
    zone = ZoneInfo(status.tz) if status.tz else None
    local = now.astimezone(zone)
    windows: Sequence[BandwidthWindow] = status.schedule

    def limit_at(t: datetime) -> tuple[bool, float | None]:
        covering = [w for w in windows if w.covers(t)]
        limits = [w.bps for w in covering if w.bps is not None]
        return bool(covering), (min(limits) if limits else None)

    here = limit_at(local)
    edges = sorted({e for w in windows for e in w.edges_after(local) if e > local})
    return next((e for e in edges if limit_at(e) != here), None)


class LimitGridModel(QAbstractTableModel):
    """7 rows (Monday first) × 24 hour columns; a cell holds a limit in bytes/s or None."""

    def __init__(self, grid: Grid | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.grid: Grid = [list(row) for row in grid] if grid else [[None] * 24 for _ in range(7)]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 7

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 24

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal and 0 <= section < 24:
            return f"{section:02d}"
        if orientation == Qt.Orientation.Vertical and 0 <= section < 7:
            return DAY_TITLES[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < 7 and 0 <= index.column() < 24):
            return None
        bps = self.grid[index.row()][index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if bps is None else f"{bps / KB:g}"
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            h = index.column()
            when = f"{DAY_TITLES[index.row()]} {h:02d}:00–{(h + 1) % 24:02d}:00"
            return f"{when}: {'no scheduled limit' if bps is None else format_limit(bps)}"
        if role == Qt.ItemDataRole.BackgroundRole and bps is not None:
            c = theme.colors().bar
            c.setAlpha(110)
            return c
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def set_cells(self, cells: Iterable[tuple[int, int]], bps: float | None) -> None:
        changed = [(r, c) for r, c in cells if 0 <= r < 7 and 0 <= c < 24 and self.grid[r][c] != bps]
        for r, c in changed:
            self.grid[r][c] = bps
            i = self.index(r, c)
            self.dataChanged.emit(i, i)


class BandwidthDialog(QDialog):
    """Edit the weekly limit grid: select cells, type a limit, Apply (or Clear)."""

    def __init__(self, status: BandwidthStatus, now: datetime, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "bandwidthDialog", "Bandwidth schedule")
        self.setWindowTitle("Bandwidth schedule")
        self.tz = status.tz
        lay = QVBoxLayout(self)
        intro = QLabel(
            "Select hours (drag across the grid) and set the limit that network jobs share "
            f"then. Times are {'in ' + status.tz if status.tz else 'local time'}; "
            "empty hours use the normal limit."
        )
        intro.setWordWrap(True)
        intro.setObjectName("bandwidthIntro")
        lay.addWidget(intro)
        self.model = LimitGridModel(grid_from_windows(status.schedule), self)
        self.view = QTableView()
        name(self.view, "bandwidthGrid", "Weekly bandwidth limits, days by hours, in KB/s")
        self.view.setModel(self.model)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setWordWrap(False)
        h = self.view.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        h.setDefaultSectionSize(34)
        h.setMinimumSectionSize(20)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.view.verticalHeader().setDefaultSectionSize(26)
        self.view.setMinimumSize(34 * 24 + 60, 26 * 7 + 34)
        lay.addWidget(self.view)
        row = QHBoxLayout()
        label = QLabel("&Limit:")
        self.limit = QSpinBox()
        name(self.limit, "bandwidthLimit", "Limit for the selected hours, in KB/s")
        self.limit.setRange(1, 10_000_000)
        self.limit.setValue(200)
        self.limit.setSuffix(" KB/s")
        label.setBuddy(self.limit)
        self.apply_button = QPushButton("&Apply to selection")
        name(self.apply_button, "bandwidthApply", "Apply the limit to the selected hours")
        self.clear_button = QPushButton("&No limit for selection")
        name(self.clear_button, "bandwidthClear", "Remove the scheduled limit from the selected hours")
        row.addWidget(label)
        row.addWidget(self.limit)
        row.addWidget(self.apply_button)
        row.addWidget(self.clear_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.status = QLabel(f"Now: {status_text(status, now)}")
        name(self.status, "bandwidthStatusNow", "Limit in force now")
        lay.addWidget(self.status)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.setObjectName("bandwidthButtons")
        name(buttons.button(QDialogButtonBox.StandardButton.Save), "bandwidthSave", "Save the schedule")
        name(buttons.button(QDialogButtonBox.StandardButton.Cancel), "bandwidthCancel", "Cancel")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.apply_button.clicked.connect(lambda: self.apply_limit(self.limit.value() * KB))
        self.clear_button.clicked.connect(lambda: self.apply_limit(None))

    def select(self, days: Iterable[int], start_hour: int, end_hour: int) -> None:
        """Select the hours [start_hour, end_hour) on `days` (tests and keyboard users)."""
        sm = self.view.selectionModel()
        sm.clearSelection()
        sel = QItemSelection()
        for d in days:
            sel.select(self.model.index(d, start_hour), self.model.index(d, end_hour - 1))
        sm.select(sel, QItemSelectionModel.SelectionFlag.Select)

    def apply_limit(self, bps: float | None) -> None:
        cells = [(i.row(), i.column()) for i in self.view.selectionModel().selectedIndexes()]
        self.model.set_cells(cells, bps)

    def windows(self) -> list[tuple[list[int], str, str, float]]:
        return windows_from_grid(self.model.grid)
