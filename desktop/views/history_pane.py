"""The History pane: finished tasks newest first, with filters, Retry, Retry all failed,
Clear (with a count and Undo), export and the retention setting."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core import TaskState
from desktop import export
from desktop.bridge import Bridge, EngineStatus
from desktop.dialogs.common import ask, confirm
from desktop.models.history import HistoryFilter, HistoryModel
from desktop.models.roles import HistoryColumn, Role
from desktop.views.widgets import EmptyState, Toast, name, table_header

RESULTS = (
    ("All results", ()),
    ("Completed", (TaskState.COMPLETED.value,)),
    ("Failed", (TaskState.FAILED.value,)),
    ("Cancelled", (TaskState.CANCELLED.value,)),
    ("Skipped", (TaskState.DEPENDENCY_FAILED.value, TaskState.SKIPPED.value)),
    ("Expired", (TaskState.EXPIRED.value,)),
)
DATES = (("Any time", None), ("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30))
UNDO_MS = 8000


class HistoryPane(QWidget):
    """Signals:
    current_changed(object): the selected task id or None.
    """

    current_changed = Signal(object)

    def __init__(
        self, bridge: Bridge, model: HistoryModel, toast: Toast, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        name(self, "historyPane", "History")
        self.bridge = bridge
        self.model = model
        self.toast = toast
        self._pending_clears: dict[str, list[int]] = {}
        self._tokens = itertools.count(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        bar = QWidget()
        name(bar, "historyBar", "History filters and actions")
        row = QHBoxLayout(bar)
        row.setContentsMargins(8, 6, 8, 6)
        self.result_filter = QComboBox()
        name(self.result_filter, "historyResultFilter", "Show results")
        for title, _ in RESULTS:
            self.result_filter.addItem(title)
        self.kind_filter = QComboBox()
        name(self.kind_filter, "historyKindFilter", "Show kind")
        self.kind_filter.addItem("All kinds", None)
        self.date_filter = QComboBox()
        name(self.date_filter, "historyDateFilter", "Finished when")
        for title, days in DATES:
            self.date_filter.addItem(title, days)
        self.search = QLineEdit()
        name(self.search, "historySearch", "Search history")
        self.search.setPlaceholderText("Search name, kind, error…")
        self.search.setMinimumWidth(200)
        self.search.setClearButtonEnabled(True)
        for w in (self.result_filter, self.kind_filter, self.date_filter):
            row.addWidget(w)
        row.addWidget(self.search, 1)
        self.retry_button = QPushButton("Retry")
        name(self.retry_button, "historyRetry", "Retry the selected jobs")
        self.retry_all_button = QPushButton("Retry all failed")
        name(self.retry_all_button, "historyRetryAll", "Retry all failed jobs")
        self.clear_button = QPushButton("Clear…")
        name(self.clear_button, "historyClear", "Clear history")
        self.export_button = QToolButton()
        name(self.export_button, "historyExport", "Export history")
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        menu.setObjectName("historyExportMenu")
        menu.addAction("As CSV…", lambda: self.bridge.spawn(self._export_flow("csv"), "Export"))
        menu.addAction("As JSON…", lambda: self.bridge.spawn(self._export_flow("json"), "Export"))
        self.export_button.setMenu(menu)
        for button in (self.retry_button, self.retry_all_button, self.clear_button, self.export_button):
            row.addWidget(button)
        keep_label = QLabel("Keep")
        keep_label.setObjectName("historyKeepLabel")
        self.keep = QSpinBox()
        name(self.keep, "historyKeep", "Keep at most this many finished jobs")
        self.keep.setRange(0, 1_000_000)
        self.keep.setSpecialValueText("all")
        self.keep.setSuffix(" entries")
        self.keep.setGroupSeparatorShown(True)  # 10,000 entries, not 10000
        self.keep.setToolTip("Retention: the oldest finished jobs beyond this many are removed")
        self.keep.setKeyboardTracking(False)
        keep_label.setBuddy(self.keep)
        row.addWidget(keep_label)
        row.addWidget(self.keep)
        lay.addWidget(bar)
        self.view = QTableView()
        name(self.view, "historyView", "History: finished jobs, newest first")
        self.view.setModel(model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(24)
        self.view.setWordWrap(False)
        header = self.view.horizontalHeader()
        table_header(
            header,
            "historyHeader",
            (
                (HistoryColumn.NAME, 240),
                (HistoryColumn.KIND, 110),
                (HistoryColumn.RESULT, 150),
                (HistoryColumn.FINISHED, 135),
                (HistoryColumn.DURATION, 85),
                (HistoryColumn.OUTPUT, 150),
                (HistoryColumn.ATTEMPTS, 80),
                (HistoryColumn.REASON, 330),
                (HistoryColumn.ID, 60),
            ),
            movable=True,
        )
        self.view.setSortingEnabled(True)
        header.setSortIndicator(HistoryColumn.FINISHED, Qt.SortOrder.DescendingOrder)
        lay.addWidget(self.view, 1)
        self.empty = EmptyState("historyEmpty", self.view.viewport())
        self.empty.clicked.connect(self._empty_clicked)
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(250)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.search.textChanged.connect(lambda _: self._filter_timer.start())
        for combo in (self.result_filter, self.kind_filter, self.date_filter):
            combo.currentIndexChanged.connect(lambda _=0: self.apply_filter())
        self.retry_button.clicked.connect(self.retry_selected)
        self.retry_all_button.clicked.connect(self.retry_all_failed)
        self.clear_button.clicked.connect(self.clear_history)
        self.keep.editingFinished.connect(self._keep_changed)
        model.rows_changed.connect(self.refresh_overlay)
        model.fetching_changed.connect(lambda _: self.refresh_overlay())
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        toast.action.connect(self._toast_action)
        toast.expired.connect(self._toast_expired)
        self._status: EngineStatus | None = None
        self._selection_changed()
        self.refresh_overlay()

    def set_kinds(self, kinds: list[str]) -> None:
        current = self.kind_filter.currentData()
        self.kind_filter.blockSignals(True)
        self.kind_filter.clear()
        self.kind_filter.addItem("All kinds", None)
        for k in kinds:
            self.kind_filter.addItem(k, k)
        i = self.kind_filter.findData(current)
        self.kind_filter.setCurrentIndex(max(0, i))
        self.kind_filter.blockSignals(False)

    def set_status(self, status: EngineStatus) -> None:
        self._status = status
        if not self.keep.hasFocus():
            self.keep.blockSignals(True)
            self.keep.setValue(status.retention_keep or 0)
            self.keep.blockSignals(False)
        self.model.set_cap(status.retention_keep)

    # -- filters --------------------------------------------------------------------------------

    def current_filter(self) -> HistoryFilter:
        states = RESULTS[max(0, self.result_filter.currentIndex())][1]
        days = self.date_filter.currentData()
        since = None
        if days is not None:
            today = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
            since = today - timedelta(days=int(days))
        return HistoryFilter(
            states=tuple(states),
            kind=self.kind_filter.currentData(),
            since=since,
            search=self.search.text().strip(),
        )

    def apply_filter(self) -> None:
        f = self.current_filter()
        if f != self.model.filter:
            self.model.set_filter(f)
        self.refresh_overlay()

    def refresh_overlay(self) -> None:
        if self.model.rowCount() > 0:
            self.empty.hide()
        elif self.model.fetching:
            self.empty.show_state("Reading history…")
        elif not self.model.filter.empty:
            self.empty.show_state("No finished jobs match these filters.", "", "Clear filters")
        else:
            self.empty.show_state(
                "No finished jobs yet.", "Jobs appear here when they complete, fail or are cancelled."
            )
        self._selection_changed()

    def _empty_clicked(self) -> None:
        for combo in (self.result_filter, self.kind_filter, self.date_filter):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.apply_filter()

    # -- actions --------------------------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        return [int(i.data(Role.TASK_ID)) for i in self.view.selectionModel().selectedRows(0)]

    def current_task_id(self) -> int | None:
        """The task selected alone, if one is."""
        ids = self.selected_ids()
        return ids[0] if len(ids) == 1 else None

    def _selection_changed(self) -> None:
        recs = [
            r
            for r in (self.model.record_at(i.row()) for i in self.view.selectionModel().selectedRows(0))
            if r
        ]
        self.retry_button.setEnabled(
            any(r.state in (TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED) for r in recs)
        )
        self.clear_button.setEnabled(self.model.rowCount() > 0)
        self.export_button.setEnabled(self.model.rowCount() > 0)
        self.current_changed.emit(self.current_task_id())

    def retry_selected(self) -> None:
        recs = [
            r
            for r in (self.model.record_at(i.row()) for i in self.view.selectionModel().selectedRows(0))
            if r
        ]
        ids = [r.id for r in recs if r.state in (TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED)]
        if ids:
            self.bridge.spawn(self._retry(ids), "Retry")

    async def _retry(self, ids: list[int]) -> None:
        await self.bridge.retry(ids)
        self.toast.show_message(f"Queued {len(ids)} job{'s' if len(ids) != 1 else ''} again")

    def retry_all_failed(self) -> None:
        self.bridge.spawn(self._retry_all(), "Retry all failed")

    async def _retry_all(self) -> None:
        ids = await self.bridge.retry_failed()
        if ids:
            self.toast.show_message(f"Queued {len(ids)} failed job{'s' if len(ids) != 1 else ''} again")
        else:
            self.toast.show_message("No failed jobs to retry")

    def clear_history(self) -> None:
        self.bridge.spawn(self._clear_flow(), "Clear history")

    async def _clear_flow(self) -> None:
        f = self.model.filter
        ids = await self.bridge.history_ids(states=f.states, kind=f.kind, since=f.since, search=f.search)
        if self._status is not None and self._status.retention_keep and f.empty:
            ids = ids[: self._status.retention_keep]
        if not ids:
            return
        n = len(ids)
        answer = await confirm(
            self,
            name="confirmClearHistory",
            title="Clear history",
            text=f"Remove {n} entr{'y' if n == 1 else 'ies'} from history?",
            informative="Running and queued jobs are not touched. You can undo this for a few seconds.",
            accept=f"Remove {n}",
            destructive=True,
        )
        if answer.choice != "accept":
            return
        token = f"clear{next(self._tokens)}"
        self._pending_clears[token] = ids
        self.model.hide(ids)
        self.toast.show_message(
            f"Removed {n} entr{'y' if n == 1 else 'ies'} from history", action="Undo", tag=token, ms=UNDO_MS
        )

    def _toast_action(self, tag: str) -> None:
        ids = self._pending_clears.pop(tag, None)
        if ids is not None:
            self.model.unhide(ids)

    def _toast_expired(self, tag: str) -> None:
        ids = self._pending_clears.pop(tag, None)
        if ids is not None:
            self.bridge.spawn(self.bridge.delete_history(ids), "Clear history")

    async def commit_pending(self) -> None:
        """Quitting: clears the user confirmed are carried out."""
        for tag in list(self._pending_clears):
            ids = self._pending_clears.pop(tag)
            await self.bridge.delete_history(ids)

    def _keep_changed(self) -> None:
        keep = self.keep.value() or None
        if self._status is not None and keep == self._status.retention_keep:
            return
        days = self._status.retention_days if self._status is not None else 90.0
        self.bridge.spawn(self.bridge.set_retention(keep, days), "Retention")

    async def _export_flow(self, fmt: str) -> None:
        dialog = QFileDialog(self, f"Export history as {fmt.upper()}")
        dialog.setObjectName("exportDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter("CSV files (*.csv)" if fmt == "csv" else "JSON files (*.json)")
        dialog.setDefaultSuffix(fmt)
        dialog.selectFile(f"taskdeck-history.{fmt}")
        if await ask(dialog) != QFileDialog.DialogCode.Accepted or not dialog.selectedFiles():
            return
        path = Path(dialog.selectedFiles()[0])
        n = await self.export_to(path, fmt)
        self.toast.show_message(f"Exported {n} entries to {path.name}")

    async def export_to(self, path: Path, fmt: str) -> int:
        f = self.model.filter
        recs = await self.bridge.history(
            states=f.states, kind=f.kind, since=f.since, search=f.search, limit=None
        )
        text = export.to_csv(recs) if fmt == "csv" else export.to_json(recs)
        await asyncio.to_thread(path.write_text, text, encoding="utf-8")
        return len(recs)

    def visible_rows(self) -> list[list[str]]:
        m = self.model
        return [
            [str(m.index(r, c).data() or "") for c in range(m.columnCount())] for r in range(m.rowCount())
        ]

    def select_row(self, row: int) -> None:
        self.view.selectRow(row)

    def current_index(self) -> QModelIndex:
        return self.view.currentIndex()
