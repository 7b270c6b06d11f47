"""The Schedules pane: the schedules with their trigger in words, next run and countdown,
last result and missed runs; New/Edit, Run now, Pause/Resume, Delete; the selected
schedule's own runs below (skipped fires say why); the weekly bandwidth-limit grid."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core import KindInfo, Schedule, TaskdeckError
from desktop.bridge import Bridge
from desktop.dialogs import jobs as job_dialogs
from desktop.dialogs.bandwidth import BandwidthDialog, status_text
from desktop.dialogs.common import ask, confirm
from desktop.dialogs.job_form import JobDialog
from desktop.dialogs.new_job import NewJob
from desktop.dialogs.schedule import ScheduleDialog
from desktop.models.schedules import (
    RunColumn,
    ScheduleColumn,
    ScheduleModel,
    ScheduleRunsModel,
    schedule_name,
)
from desktop.views.widgets import EmptyState, name, table_header

logger = logging.getLogger(__name__)
TICK_MS = 1000  # countdowns move once a second


class SchedulesPane(QWidget):
    """Signals:
    run_selected(object): the task id of the run selected in the runs list, or None.
    """

    run_selected = Signal(object)

    def __init__(self, bridge: Bridge, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "schedulesPane", "Schedules")
        self.bridge = bridge
        self.settings = settings  # the New-job dialogs' remembered choices
        self.model = ScheduleModel(bridge.now, self)
        self.model.setObjectName("scheduleModel")
        self.runs_model = ScheduleRunsModel(bridge.now, self)
        self.runs_model.setObjectName("scheduleRunsModel")
        self.dialog: ScheduleDialog | None = None
        self.bandwidth_dialog: BandwidthDialog | None = None
        self._loaded = False
        self._runs_for: int | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        bar = QWidget()
        name(bar, "schedulesBar", "Schedule actions")
        row = QHBoxLayout(bar)
        row.setContentsMargins(8, 6, 8, 6)
        self.actions_by_name: dict[str, QAction] = {}
        self.buttons: dict[str, QPushButton] = {}
        for key, title, tip, shortcut in (
            ("new", "New schedule…", "Add a recurring job", None),
            ("edit", "Edit…", "Change the selected schedule", None),
            ("run_now", "Run now", "Run the selected schedule's job now (its next run does not move)", None),
            ("toggle", "Pause", "Pause or resume the selected schedule", None),
            ("delete", "Delete…", "Delete the selected schedule (its past runs stay in History)", "Delete"),
        ):
            act = QAction(title, self)
            act.setObjectName(f"action_schedule_{key}")
            act.setToolTip(tip)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
                act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.addAction(act)
            self.actions_by_name[key] = act
            button = QPushButton(title)
            name(button, f"schedule_{key}_button", title.replace("…", ""))
            button.setToolTip(tip)
            button.clicked.connect(act.trigger)
            row.addWidget(button)
            self.buttons[key] = button
        row.addStretch(1)
        self.bandwidth_label = QLabel()
        name(self.bandwidth_label, "bandwidthStatus", "Bandwidth limit in force")
        row.addWidget(self.bandwidth_label)
        self.bandwidth_button = QPushButton("Bandwidth schedule…")
        name(self.bandwidth_button, "bandwidthScheduleButton", "Edit the weekly bandwidth limits")
        row.addWidget(self.bandwidth_button)
        lay.addWidget(bar)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("schedulesSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.view = QTableView()
        name(self.view, "schedulesView", "Schedules")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(26)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header = self.view.horizontalHeader()
        table_header(
            header,
            "schedulesHeader",
            (
                (ScheduleColumn.ENABLED, 44),
                (ScheduleColumn.NAME, 200),
                (ScheduleColumn.SCHEDULE, 260),
                (ScheduleColumn.NEXT_RUN, 170),
                (ScheduleColumn.LAST_RESULT, 160),
                (ScheduleColumn.RUNS, 56),
            ),
        )
        self.splitter.addWidget(self.view)
        runs_box = QWidget()
        runs_box.setObjectName("scheduleRunsBox")
        rlay = QVBoxLayout(runs_box)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.setSpacing(0)
        self.runs_title = QLabel("Runs")
        name(self.runs_title, "scheduleRunsTitle", "Runs of the selected schedule")
        self.runs_title.setContentsMargins(8, 6, 8, 4)
        rlay.addWidget(self.runs_title)
        self.runs_view = QTableView()
        name(self.runs_view, "scheduleRunsView", "Runs of the selected schedule, newest first")
        self.runs_view.setModel(self.runs_model)
        self.runs_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_view.setAlternatingRowColors(True)
        self.runs_view.setShowGrid(False)
        self.runs_view.setWordWrap(False)
        self.runs_view.verticalHeader().hide()
        rh = self.runs_view.horizontalHeader()
        table_header(
            rh,
            "scheduleRunsHeader",
            (
                (RunColumn.WHEN, 120),
                (RunColumn.TRIGGER, 90),
                (RunColumn.RESULT, 290),
                (RunColumn.DURATION, 80),
                (RunColumn.DETAIL, 260),
            ),
        )
        rlay.addWidget(self.runs_view)
        self.splitter.addWidget(runs_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        lay.addWidget(self.splitter, 1)
        self.empty = EmptyState("schedulesEmpty", self.view.viewport())
        self.empty.clicked.connect(self.new_schedule)
        # wiring
        a = self.actions_by_name
        a["new"].triggered.connect(self.new_schedule)
        a["edit"].triggered.connect(self.edit_selected)
        a["run_now"].triggered.connect(self.run_now_selected)
        a["toggle"].triggered.connect(self.toggle_selected)
        a["delete"].triggered.connect(self.delete_selected)
        self.bandwidth_button.clicked.connect(self.edit_bandwidth)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.doubleClicked.connect(lambda _: self.edit_selected())
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.runs_view.selectionModel().currentRowChanged.connect(self._run_current)
        self.model.enabled_requested.connect(self.set_enabled)
        self.model.rowsInserted.connect(lambda *_: self.refresh_overlay())
        self.model.rowsRemoved.connect(lambda *_: self.refresh_overlay())
        self.model.modelReset.connect(self.refresh_overlay)
        bridge.schedules_changed.connect(self.on_schedules_changed)
        bridge.batch_ready.connect(lambda batch: self.model.note_runs(batch.upserts.values()))
        bridge.status_changed.connect(lambda _: self.refresh_bandwidth())
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self.refresh_overlay()

    # -- contents -----------------------------------------------------------------------------

    def load(self) -> None:
        """Read every schedule, once the bridge follows events (afterwards it reports the
        changes); changes reported before then load everything."""
        try:
            self.model.reset(self.bridge.schedules())
            self.model.note_runs(self.bridge.active_schedule_runs(self.model.ids()))
        except TaskdeckError as e:
            logger.warning("could not read schedules: %s", e)
            return
        self._loaded = True
        self.refresh_bandwidth()
        self._selection_changed()

    def on_schedules_changed(self, ids: set[int]) -> None:
        if not self._loaded:
            self.load()
            return
        for sid in sorted(ids):
            try:
                s = self.bridge.schedule(sid)
            except TaskdeckError:
                continue
            if s is None:
                self.model.remove(sid)
            else:
                self.model.upsert(s)
        self._update_actions()
        if self._runs_for is not None and self._runs_for in ids:
            self.reload_runs()

    def _tick(self) -> None:
        self.model.tick()
        if self.isVisible():
            self.refresh_bandwidth()

    def refresh_bandwidth(self) -> None:
        try:
            status = self.bridge.bandwidth()
        except TaskdeckError:
            self.bandwidth_label.setText("")
            return
        text = f"Bandwidth: {status_text(status, self.bridge.now())}"
        if self.bandwidth_label.text() != text:
            self.bandwidth_label.setText(text)
            self.bandwidth_label.setAccessibleDescription(text)

    def refresh_overlay(self) -> None:
        if self.model.rowCount() == 0:
            self.empty.show_state(
                "No schedules yet",
                "Run a job every day, every weekday or every few minutes.",
                "New schedule…",
            )
        else:
            self.empty.hide()

    # -- selection ----------------------------------------------------------------------------

    def selected_id(self) -> int | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        s = self.model.schedule_at(rows[0].row())
        return s.id if s is not None else None

    def model_schedules(self) -> list[Schedule]:
        return [s for i in range(self.model.rowCount()) if (s := self.model.schedule_at(i)) is not None]

    def select_schedule(self, schedule_id: int) -> None:
        row = self.model.row_of(schedule_id)
        if row is not None:
            self.view.selectRow(row)

    def _selection_changed(self) -> None:
        self._update_actions()
        sid = self.selected_id()
        if sid != self._runs_for:
            self._runs_for = sid
            self.reload_runs()

    def _update_actions(self) -> None:
        sid = self.selected_id()
        s = self.model.schedule(sid) if sid is not None else None
        for key in ("edit", "run_now", "toggle", "delete"):
            self.actions_by_name[key].setEnabled(s is not None)
            self.buttons[key].setEnabled(s is not None)
        title = "Resume" if s is not None and s.paused else "Pause"
        self.actions_by_name["toggle"].setText(title)
        self.buttons["toggle"].setText(title)
        self.buttons["toggle"].setAccessibleName(f"{title} the selected schedule")

    def reload_runs(self) -> None:
        sid = self._runs_for
        if sid is None:
            self.runs_model.set_runs([])
            self.runs_title.setText("Runs — select a schedule to see its runs")
            return
        s = self.model.schedule(sid)
        self.runs_title.setText(f"Runs of “{schedule_name(s)}”" if s else "Runs")
        self.bridge.spawn(self._load_runs(sid), "Schedule runs")

    async def _load_runs(self, sid: int) -> None:
        runs = await self.bridge.schedule_runs(sid)
        if sid == self._runs_for:
            self.runs_model.set_runs(runs)

    def current_task_id(self) -> int | None:
        """The run selected in the runs list, if any."""
        current = self.runs_view.currentIndex()
        rec = self.runs_model.record_at(current.row()) if current.isValid() else None
        return rec.id if rec is not None else None

    def _run_current(self, current: QModelIndex, previous: QModelIndex) -> None:
        rec = self.runs_model.record_at(current.row()) if current.isValid() else None
        self.run_selected.emit(rec.id if rec is not None else None)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if index.isValid():
            self.view.selectRow(index.row())
        menu = QMenu(self)
        menu.setObjectName("schedulesMenu")
        a = self.actions_by_name
        if index.isValid():
            for key in ("run_now", "toggle", "edit"):
                menu.addAction(a[key])
            menu.addSeparator()
            menu.addAction(a["delete"])
        else:
            menu.addAction(a["new"])
        menu.popup(self.view.viewport().mapToGlobal(pos))

    # -- actions ----------------------------------------------------------------------------

    def _kinds(self) -> list[KindInfo]:
        return sorted(self.bridge.kinds(), key=lambda k: k.kind)

    def new_schedule(self, job: NewJob | None = None) -> None:
        """Open New schedule; with `job` (from a New job dialog's Schedule…) it runs that job."""
        self.bridge.spawn(self._edit_flow(None, job), "New schedule")

    def edit_selected(self) -> None:
        sid = self.selected_id()
        if sid is not None:
            self.bridge.spawn(self._edit_flow(sid), "Edit schedule")

    async def _job_dialog(self, kind: str, parent: QWidget) -> JobDialog:
        """A built-in kind's own New-job dialog, for the schedule dialog's job."""
        return await job_dialogs.make_dialog(kind, self.bridge, self.bridge.kinds(), self.settings, parent)

    async def _edit_flow(self, sid: int | None, job: NewJob | None = None) -> None:
        current = self.bridge.schedule(sid) if sid is not None else None
        if sid is not None and current is None:
            return
        dialog = ScheduleDialog(
            self._kinds(), self.bridge.now, current, self, job=job, make_editor=self._job_dialog
        )
        self.dialog = dialog
        try:
            if await ask(dialog) != ScheduleDialog.DialogCode.Accepted:
                return
            draft = dialog.draft()
        finally:
            dialog.deleteLater()
            self.dialog = None
        if draft is None:
            return
        options: dict[str, Any] = draft.options()
        if sid is None:
            options = {k: v for k, v in options.items() if v is not None}
            new_id = await self.bridge.add_schedule(draft.kind, draft.payload, **options)
            self.on_schedules_changed({new_id})
            self.select_schedule(new_id)
        else:
            await self.bridge.update_schedule(sid, kind=draft.kind, payload=draft.payload, **options)
            self.on_schedules_changed({sid})

    def run_now_selected(self) -> None:
        sid = self.selected_id()
        if sid is not None:
            self.bridge.spawn(self._run_now(sid), "Run now")

    async def _run_now(self, sid: int) -> None:
        res = await self.bridge.run_schedule_now(sid)
        s = self.model.schedule(sid)
        self.window().statusBar().showMessage(  # type: ignore[attr-defined]
            f"Started job #{res.id} from “{schedule_name(s) if s else sid}” (manual run)", 4000
        )

    def toggle_selected(self) -> None:
        sid = self.selected_id()
        s = self.model.schedule(sid) if sid is not None else None
        if s is not None:
            self.set_enabled(s.id, s.paused)

    def set_enabled(self, schedule_id: int, on: bool) -> None:
        self.bridge.spawn(self._set_paused(schedule_id, not on), "Resume" if on else "Pause")

    async def _set_paused(self, sid: int, paused: bool) -> None:
        await self.bridge.set_schedule_paused(sid, paused)
        self.on_schedules_changed({sid})

    def delete_selected(self) -> None:
        sid = self.selected_id()
        if sid is not None:
            self.bridge.spawn(self._delete(sid), "Delete schedule")

    async def _delete(self, sid: int) -> None:
        s = self.model.schedule(sid)
        answer = await confirm(
            self,
            name="confirmDeleteSchedule",
            title="Delete schedule",
            text=f"Delete the schedule “{schedule_name(s) if s else sid}”?",
            informative="It will not run again. Its past runs stay in History.",
            accept="Delete",
            destructive=True,
        )
        if answer.choice != "accept":
            return
        await self.bridge.remove_schedule(sid)
        self.on_schedules_changed({sid})

    def edit_bandwidth(self) -> None:
        self.bridge.spawn(self._bandwidth_flow(), "Bandwidth schedule")

    async def _bandwidth_flow(self) -> None:
        dialog = BandwidthDialog(self.bridge.bandwidth(), self.bridge.now(), self)
        self.bandwidth_dialog = dialog
        try:
            if await ask(dialog) != BandwidthDialog.DialogCode.Accepted:
                return
            windows = dialog.windows()
            tz = dialog.tz
        finally:
            dialog.deleteLater()
            self.bandwidth_dialog = None
        await self.bridge.set_bandwidth_schedule(windows, tz=tz)
        self.refresh_bandwidth()
