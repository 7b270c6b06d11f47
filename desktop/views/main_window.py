"""The main window: sidebar, Queue and History panes, details panel, toolbar, menus and
status bar. It wires models to the bridge and keeps the UI state in QSettings."""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QStatusBar,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core import KindInfo, Recovery, SubmitOutcome, TaskState
from core.jobs import offered
from desktop import theme
from desktop.bridge import Bridge, EngineStatus, TaskBatch
from desktop.dialogs import jobs as job_dialogs
from desktop.dialogs.common import ask, message_box
from desktop.dialogs.job_form import JobDialog
from desktop.dialogs.new_job import NewJob, NewJobDialog
from desktop.dialogs.settings import SettingsDialog, UiSettings
from desktop.drops import drop_action, queue_dropped
from desktop.files import FileTarget, file_targets
from desktop.models.history import HistoryModel
from desktop.models.queue import QueueModel
from desktop.views.details import DetailsPanel
from desktop.views.history_pane import HistoryPane
from desktop.views.queue_pane import QueuePane
from desktop.views.resources import ResourcesButton
from desktop.views.schedules_pane import SchedulesPane
from desktop.views.sidebar import ALL, HISTORY, SCHEDULES, Sidebar
from desktop.views.statusbar import (
    BandwidthToggle,
    DeferralLabel,
    ResourceMonitor,
    overall_progress,
    total_speed,
)
from desktop.views.widgets import Toast, name
from desktop.vocabulary import Category, format_bytes

logger = logging.getLogger(__name__)
QUEUE, HISTORY_PANE, SCHEDULES_PANE = 0, 1, 2


def recovery_text(r: Recovery) -> str:
    """ux A-01: "Recovered 4 jobs from the last session: 3 resumed, 1 restarted …"."""
    n = r.resumed + r.restarted
    parts = []
    if r.resumed:
        parts.append(f"{r.resumed} resumed from where they stopped")
    if r.restarted:
        parts.append(f"{r.restarted} restarted from the beginning")
    if r.finalized:
        parts.append(f"{r.finalized} finished their last step")
    if r.failed:
        parts.append(f"{r.failed} failed after being interrupted 3 times")
    total = n + r.finalized + r.failed
    return (
        f"Recovered {total} job{'s' if total != 1 else ''} from the last session: " + ", ".join(parts) + "."
    )


class MainWindow(QMainWindow):
    """Signals:
    quit_requested(): the user asked to quit (the app confirms and stops the engine).
    ui_settings_saved(UiSettings): the settings dialog saved the window settings.
    """

    quit_requested = Signal()
    ui_settings_saved = Signal(object)

    def __init__(
        self, bridge: Bridge, settings: QSettings, log_path: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        name(self, "mainWindow", "Taskdeck")
        self.setWindowTitle("Taskdeck")
        self.bridge = bridge
        self.settings = settings
        self.log_path = log_path
        self.allow_close = False
        # set by desktop.integration: the X hides into the tray when this returns True
        self.close_hook: Callable[[], bool] | None = None
        self.tray_available: Callable[[], bool] = lambda: False
        self.queue_model = QueueModel(self)
        self.queue_model.setObjectName("queueModel")
        self.history_model = HistoryModel(bridge, self)
        self.history_model.setObjectName("historyModel")
        self._kinds: list[KindInfo] = []
        self._status: EngineStatus | None = None
        self._pending_splitter: QByteArray | None = None
        self._pending_content: QByteArray | None = None
        self.new_job_dialog: NewJobDialog | JobDialog | None = None
        self.settings_dialog: SettingsDialog | None = None
        # layout
        central = QWidget()
        central.setObjectName("central")
        clay = QVBoxLayout(central)
        clay.setContentsMargins(0, 0, 0, 0)
        self.setCentralWidget(central)
        self.toast = Toast(central)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.setChildrenCollapsible(False)
        clay.addWidget(self.splitter)
        self.sidebar = Sidebar()
        self.splitter.addWidget(self.sidebar)
        self.panes = QStackedWidget()
        name(self.panes, "panes", "Panes")
        self.queue_pane = QueuePane(bridge, self.queue_model)
        self.history_pane = HistoryPane(bridge, self.history_model, self.toast)
        self.panes.addWidget(self.queue_pane)
        self.panes.addWidget(self.history_pane)
        self.schedules_pane = SchedulesPane(bridge, self.settings)
        self.panes.addWidget(self.schedules_pane)
        self.panes.currentChanged.connect(self._pane_shown)
        self.schedules_pane.run_selected.connect(self._history_current)
        # the details sit under the list, as qBittorrent's properties: the table keeps its width
        self.content = QSplitter(Qt.Orientation.Vertical)
        self.content.setObjectName("contentSplitter")
        self.content.setChildrenCollapsible(False)
        self.content.addWidget(self.panes)
        self.details = DetailsPanel(bridge)
        self.content.addWidget(self.details)
        self.content.setStretchFactor(0, 1)
        self.content.setStretchFactor(1, 0)
        self.content.setSizes([520, 240])
        self.splitter.addWidget(self.content)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([190, 1200])
        self._make_toolbar()
        self._make_statusbar()
        self._make_menus()
        # wiring
        bridge.batch_ready.connect(self._on_batch)
        bridge.page_loaded.connect(self.queue_model.add_page)
        bridge.status_changed.connect(self._on_status)
        bridge.message.connect(self._on_message)
        self.queue_model.counts_changed.connect(self._counts_changed)
        self.sidebar.chosen.connect(self._sidebar_chosen)
        self.queue_pane.current_changed.connect(self._queue_current)
        self.history_pane.current_changed.connect(self._history_current)
        self.queue_pane.add_requested.connect(lambda: self.new_job())
        self.queue_pane.files_dropped.connect(self.add_files)
        self.queue_model.loaded.connect(self._counts_changed)
        self.queue_pane.mode_banner.action.connect(self._mode_banner_action)
        self._overall_timer = QTimer(self)
        self._overall_timer.setInterval(500)
        self._overall_timer.timeout.connect(self._update_overall)
        self._overall_timer.start()
        self._counts_changed()
        self.restore_state()

    # -- building ------------------------------------------------------------------------------

    def _make_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setAccessibleName("Main toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(tb)
        self.toolbar = tb
        a = self.queue_pane.actions_by_name
        self.action_new = QAction("&Add…", self)
        self.action_new.setObjectName("action_new")
        self.action_new.setShortcut(QKeySequence.StandardKey.New)
        self.action_new.setToolTip("Add a job (Ctrl+N)")
        self.action_new.triggered.connect(lambda: self.new_job())
        self.new_menu = job_dialogs.new_job_menu(self, self.new_job)
        self.action_new.setMenu(self.new_menu)
        self.action_pause_all = QAction("Pause all", self)
        self.action_pause_all.setObjectName("action_pause_all")
        self.action_pause_all.setCheckable(True)
        self.action_pause_all.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.action_pause_all.setToolTip(
            "Pause every job; running ones stop at their next checkpoint (Ctrl+Shift+P)"
        )
        self.action_pause_all.triggered.connect(self._pause_all_toggled)
        self.action_hold = QAction("Stop after current", self)
        self.action_hold.setObjectName("action_hold")
        self.action_hold.setCheckable(True)
        self.action_hold.setToolTip("Let running jobs finish and start no new ones")
        self.action_hold.triggered.connect(self._hold_toggled)
        self.action_details = QAction("Details", self)
        self.action_details.setObjectName("action_toggle_details")
        self.action_details.setCheckable(True)
        self.action_details.setChecked(True)
        self.action_details.setShortcut(QKeySequence("Ctrl+I"))
        self.action_details.toggled.connect(self.show_details)
        for item in (
            self.action_new,
            None,
            a["pause"],
            a["resume"],
            a["cancel"],
            a["retry"],
            None,
            a["priority_up"],
            a["priority_down"],
            a["run_next"],
            None,
            self.action_pause_all,
            self.action_hold,
            None,
            self.action_details,
        ):
            if item is None:
                tb.addSeparator()
            else:
                tb.addAction(item)
        for act in tb.actions():
            button = tb.widgetForAction(act)
            if button is not None and act.objectName():
                button.setObjectName(act.objectName().replace("action_", "button_"))
                button.setAccessibleName(act.text().replace("&", "").replace("…", ""))
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        self.search = QLineEdit()
        name(self.search, "queueSearch", "Filter jobs by text")
        self.search.setPlaceholderText("Filter jobs (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(220)
        self.search.textChanged.connect(self._search_changed)
        tb.addWidget(self.search)
        find = QAction("Find", self)
        find.setObjectName("action_find")
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.triggered.connect(self._focus_search)
        self.addAction(find)

    def _make_statusbar(self) -> None:
        sb = QStatusBar()
        sb.setObjectName("statusBar")
        self.setStatusBar(sb)
        self.counts_label = QLabel()
        name(self.counts_label, "statusCounts", "Job counts")
        sb.addWidget(self.counts_label)
        self.mode_label = QLabel()
        name(self.mode_label, "statusMode", "Queue mode")
        sb.addWidget(self.mode_label)
        self.overall = QProgressBar()
        name(self.overall, "overallProgress", "Overall progress of running jobs")
        self.overall.setRange(0, 1000)
        self.overall.setMaximumWidth(160)
        self.overall.setFormat("%p %")
        self.overall.hide()
        sb.addPermanentWidget(self.overall)
        self.speed_label = QLabel()
        name(self.speed_label, "statusSpeed", "Total speed")
        sb.addPermanentWidget(self.speed_label)
        # resources (statusbar.py, resources.py): deferrals, pressure/IO, the bandwidth limit
        self.monitor = ResourceMonitor(self.bridge, self.queue_model, self)
        self.deferred_label = DeferralLabel(self.queue_model)
        sb.addWidget(self.deferred_label)
        self.resources_button = ResourcesButton(self.monitor)
        sb.addPermanentWidget(self.resources_button)
        self.bandwidth_toggle = BandwidthToggle(self.bridge, self.settings)
        sb.addPermanentWidget(self.bandwidth_toggle)
        self.monitor.sampled.connect(lambda s: self.bandwidth_toggle.show_status(s.bandwidth))
        self.monitor.sampled.connect(lambda _s: self.deferred_label.refresh())
        run_label = QLabel("Run up to")
        run_label.setObjectName("concurrencyLabel")
        self.concurrency = QSpinBox()
        name(self.concurrency, "concurrencySpin", "Run up to this many jobs at once")
        self.concurrency.setRange(1, 1024)
        self.concurrency.setKeyboardTracking(False)
        self.concurrency.setToolTip("How many jobs run at once; applies immediately")
        run_label.setBuddy(self.concurrency)
        self.concurrency.valueChanged.connect(self._concurrency_changed)
        sb.addPermanentWidget(run_label)
        sb.addPermanentWidget(self.concurrency)

    def _make_menus(self) -> None:
        mb = self.menuBar()
        mb.setObjectName("menuBar")
        a = self.queue_pane.actions_by_name
        file = mb.addMenu("&File")
        file.setObjectName("menuFile")
        file.addAction(self.action_new)
        file.addMenu(self.new_menu)
        demo = QAction("Add a &demo job…", self)
        demo.setObjectName("action_new_demo")
        demo.triggered.connect(lambda: self.new_job("demo.sleep"))
        file.addAction(demo)
        file.addSeparator()
        settings = QAction("&Settings…", self)
        settings.setObjectName("action_settings")
        settings.setShortcut(QKeySequence("Ctrl+,"))
        settings.triggered.connect(self.open_settings)
        file.addAction(settings)
        file.addSeparator()
        self.action_quit = QAction("&Quit", self)
        self.action_quit.setObjectName("action_quit")
        self.action_quit.setShortcut(QKeySequence.StandardKey.Quit)
        self.action_quit.setMenuRole(QAction.MenuRole.QuitRole)
        self.action_quit.triggered.connect(self.quit_requested.emit)
        file.addAction(self.action_quit)
        jobs = mb.addMenu("&Jobs")
        jobs.setObjectName("menuJobs")
        for key in (
            *("pause", "resume", "toggle_pause", "cancel", "retry", None, "run_next", "priority_up"),
            *(
                "priority_down",
                "move_up",
                "move_down",
                "move_top",
                "move_bottom",
                None,
                "open_output",
                "details",
            ),
        ):
            if key is None:
                jobs.addSeparator()
            else:
                jobs.addAction(a[key])
        queue = mb.addMenu("&Queue")
        queue.setObjectName("menuQueue")
        self.menu_queue = queue
        queue.addAction(self.action_pause_all)
        queue.addAction(self.action_hold)
        queue.addSeparator()
        queue.addAction(a["clear_completed"])
        queue.addAction(a["clear_finished"])
        queue.addAction(a["queue_order"])
        view = mb.addMenu("&View")
        view.setObjectName("menuView")
        for pane, title, shortcut in (
            (QUEUE, "&Queue", "Ctrl+1"),
            (HISTORY_PANE, "&History", "Ctrl+2"),
            (SCHEDULES_PANE, "&Schedules", "Ctrl+3"),
        ):
            act = QAction(title, self)
            act.setObjectName(f"action_pane_{pane}")
            act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(lambda _=False, k=pane: self.show_pane(k))
            view.addAction(act)
        view.addAction(self.action_details)
        helpm = mb.addMenu("&Help")
        helpm.setObjectName("menuHelp")
        keys = QAction("&Keyboard shortcuts", self)
        keys.setObjectName("action_shortcuts")
        keys.setShortcuts([QKeySequence(QKeySequence.StandardKey.HelpContents), QKeySequence("Ctrl+/")])
        keys.triggered.connect(self.show_shortcuts)
        helpm.addAction(keys)

    # -- panes -----------------------------------------------------------------------------------

    def show_pane(self, pane: int) -> None:
        self.panes.setCurrentIndex(pane)
        self.sidebar.blockSignals(True)
        if pane == HISTORY_PANE:
            self.sidebar.select(HISTORY)
            if self.history_model.rowCount() == 0 and not self.history_model.fetching:
                self.history_pane.apply_filter()
                self.history_model.fetchMore(self.history_model.index(0, 0).parent())
        elif pane == SCHEDULES_PANE:
            self.sidebar.select(SCHEDULES)
        elif self.sidebar.current_key() in (HISTORY, SCHEDULES):
            cat = self.queue_pane.proxy.category
            self.sidebar.select(cat.value if cat else ALL)
        self.sidebar.blockSignals(False)
        self.search.setEnabled(pane == QUEUE)

    def _pane_shown(self, pane: int) -> None:
        """The toolbar and the details follow the pane on show: its selection, not one
        left behind on a pane the user no longer sees."""
        self.queue_pane.set_active(pane == QUEUE)
        shown = (self.queue_pane, self.history_pane, self.schedules_pane)[pane]
        self.details.show_task(shown.current_task_id())

    def current_pane(self) -> int:
        return self.panes.currentIndex()

    def _sidebar_chosen(self, key: str) -> None:
        if key == HISTORY:
            self.show_pane(HISTORY_PANE)
            return
        if key == SCHEDULES:
            self.show_pane(SCHEDULES_PANE)
            return
        self.queue_pane.set_category(None if key == ALL else Category(key))
        self.show_pane(QUEUE)

    def on_queue_filters_cleared(self) -> None:
        self.sidebar.blockSignals(True)
        self.sidebar.select(ALL)
        self.sidebar.blockSignals(False)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)

    def on_queue_filter_removed(self, key: str) -> None:
        if key == "category":
            self.sidebar.blockSignals(True)
            self.sidebar.select(ALL)
            self.sidebar.blockSignals(False)
        elif key == "search":
            self.search.blockSignals(True)
            self.search.clear()
            self.search.blockSignals(False)

    def _search_changed(self, text: str) -> None:
        self.queue_pane.set_search(text)

    def _focus_search(self) -> None:
        self.show_pane(QUEUE)
        self.search.setFocus()
        self.search.selectAll()

    def show_details(self, on: bool) -> None:
        self.details.setVisible(on)
        if self.action_details.isChecked() != on:
            self.action_details.setChecked(on)

    def _queue_current(self, task_id: int | None) -> None:
        if task_id is not None:
            self.details.show_task(task_id)

    def _history_current(self, task_id: int | None) -> None:
        if task_id is not None:
            self.details.show_task(task_id)

    # -- bridge ---------------------------------------------------------------------------------

    def _on_batch(self, batch: TaskBatch) -> None:
        self.queue_model.apply(batch)
        self.history_model.apply(batch)

    def _on_status(self, status: EngineStatus) -> None:
        self._status = status
        self.concurrency.blockSignals(True)
        self.concurrency.setValue(status.max_concurrency)
        self.concurrency.blockSignals(False)
        self.action_pause_all.setChecked(status.paused_all)
        self.action_pause_all.setText("Resume all" if status.paused_all else "Pause all")
        self.action_hold.setChecked(status.held)
        self.action_hold.setText("Resume queue" if status.held else "Stop after current")
        self.history_pane.set_status(status)
        self.queue_model.set_held(status.held)
        banner = self.queue_pane.mode_banner
        if status.paused_all:
            banner.show_message("All jobs paused.", (("bannerResumeAll", "Resume all"),), closable=False)
            self.mode_label.setText("All jobs paused")
        elif status.held:
            banner.show_message(
                "Stopped after current job: running jobs finish, no new job starts.",
                (("bannerRelease", "Resume queue"),),
                closable=False,
            )
            self.mode_label.setText("Stopped after current job")
        else:
            banner.hide()
            self.mode_label.setText("")
        if status.attached:
            pid = f" (process {status.holder_pid})" if status.holder_pid else ""
            self.queue_pane.attach_banner.show_message(
                f"Attached to the Taskdeck worker{pid} that runs this database: jobs run there, "
                "and keep running when you close this window.",
                closable=True,
            )
            self.setWindowTitle("Taskdeck — attached to a worker")

    def _mode_banner_action(self, key: str) -> None:
        if key == "bannerResumeAll":
            self.bridge.spawn(self.bridge.pause_all(False), "Resume all")
        elif key == "bannerRelease":
            self.bridge.spawn(self.bridge.hold(False), "Resume queue")

    def _on_message(self, level: str, text: str) -> None:
        if level == "error":
            self.statusBar().showMessage(text, 8000)
            self.toast.show_message(text, ms=6000)
        else:
            self.toast.show_message(text)

    def _pause_all_toggled(self, on: bool) -> None:
        self.bridge.spawn(self.bridge.pause_all(on), "Pause all" if on else "Resume all")

    def _hold_toggled(self, on: bool) -> None:
        self.bridge.spawn(self.bridge.hold(on), "Stop after current")

    def _concurrency_changed(self, n: int) -> None:
        if self._status is not None and n == self._status.max_concurrency:
            return
        self.bridge.spawn(self.bridge.set_max_concurrency(n), "Run up to")

    def show_recovery(self, recovery: Recovery | None) -> None:
        if recovery is None or not recovery.total:
            return
        text = recovery_text(recovery)
        logger.info("recovery banner: %s", text)
        self.queue_pane.recovery_banner.show_message(text)

    def _counts_changed(self) -> None:
        counts = self.queue_model.counts()
        self.sidebar.set_counts(counts)
        running = counts.get(Category.RUNNING, 0)
        queued = (
            counts.get(Category.QUEUED, 0) + counts.get(Category.PAUSED, 0) + counts.get(Category.BLOCKED, 0)
        )
        failed = counts.get(Category.FAILED, 0)
        text = f"{running} running · {queued} queued"
        if failed:
            text += f" · {failed} failed"
        self.counts_label.setText(text)
        self.counts_label.setAccessibleDescription(text)
        self.queue_pane.update_actions()

    def _update_overall(self) -> None:
        """Overall progress of the running jobs, weighted by bytes (statusbar.py)."""
        value = overall_progress(self.queue_model.records())
        speed = total_speed(self.queue_model.records())
        if value is None:
            self.overall.hide()
            self.speed_label.setText("")
            return
        self.overall.setValue(round(value * 1000))
        self.overall.show()
        self.speed_label.setText(f"{format_bytes(speed)}/s" if speed else "")

    # -- adding jobs ------------------------------------------------------------------------------

    def kinds(self) -> list[KindInfo]:
        try:
            self._kinds = self.bridge.kinds()
        except Exception:  # a Client with no kinds published yet
            logger.warning("could not read the kinds", exc_info=True)
        return self._kinds

    def new_job(self, kind: str | None = None) -> None:
        self.bridge.spawn(self._new_job_flow(kind), "New job")

    async def _new_job_flow(self, kind: str | None, files: list[str] | None = None) -> None:
        kinds = self.kinds()
        last = self.settings.value("lastKind")
        chosen = kind if kind is not None else (str(last) if last else None)
        dialog: NewJobDialog | JobDialog
        if chosen in job_dialogs.DEDICATED:  # the built-in kinds have dialogs of their own
            dialog = await job_dialogs.make_dialog(chosen, self.bridge, kinds, self.settings, self)
            if files and hasattr(dialog, "inputs"):
                dialog.inputs.add(files)
        else:
            dialog = NewJobDialog(
                [k for k in offered(kinds) if k.kind not in job_dialogs.DEDICATED], chosen, self
            )
        self.new_job_dialog = dialog
        try:
            if await ask(dialog) != NewJobDialog.DialogCode.Accepted:
                return
            job = dialog.job()
            if job is not None and isinstance(dialog, JobDialog):
                job_dialogs.remember(dialog, self.settings)
        finally:
            dialog.deleteLater()
            self.new_job_dialog = None
        if job is None:
            return
        if dialog.scheduling:  # Schedule…: the job goes into a new schedule, not the queue
            self.settings.setValue("lastKind", job.kind)
            self.show_pane(SCHEDULES_PANE)
            self.schedules_pane.new_schedule(job)
            return
        await self._submit_job(job)

    async def _submit_job(self, job: NewJob) -> None:
        self.settings.setValue("lastKind", job.kind)
        res = await self.bridge.submit(
            job.kind, job.payload, priority=job.priority, label=job.label, group=job.group, key=job.key
        )
        if res.outcome in (SubmitOutcome.DUPLICATE, SubmitOutcome.REJECTED):
            self.toast.show_message(f"“{job.label or job.kind}” is already in the queue", ms=4000)
            return
        self.statusBar().showMessage(f"Added job #{res.id} ({job.label or job.kind})", 4000)

    def add_files(self, paths: list[str]) -> None:
        self.bridge.spawn(self._add_files(paths), "Add files")

    async def _add_files(self, paths: list[str]) -> None:
        action = drop_action(self.settings)
        if action is not None:  # the user chose what dropped files become (a preset, a target)
            done = await queue_dropped(self.bridge, action, paths, self.settings)
            self._dropped_message(len(done.added), done.duplicates, done.refused)
            return
        targets = file_targets(self.kinds())
        if not targets and any(k.kind == "resize.images" for k in self.kinds()):
            await self._new_job_flow("resize.images", paths)  # ux Q-02: the resize dialog, prefilled
            return
        if not targets:
            self.toast.show_message(
                "No installed kind of job takes files yet (photo resizing and uploads come with "
                "their own job kinds).",
                ms=6000,
            )
            return
        target = self._choose_target(targets)
        added = 0
        dupes: list[str] = []
        for p in paths:
            res = await self.bridge.submit(
                target.kind, target.payload(p), label=os.path.basename(p) or p, key=target.key(p)
            )
            if res.outcome in (SubmitOutcome.DUPLICATE, SubmitOutcome.REJECTED):
                dupes.append(os.path.basename(p) or p)
            else:
                added += 1
        self._dropped_message(added, dupes, [])

    def _dropped_message(self, added: int, dupes: list[str], refused: list[str]) -> None:
        if refused:
            self.toast.show_message("Not queued: " + "; ".join(refused[:3]), ms=8000)
        elif dupes:
            what = f"“{dupes[0]}” is" if len(dupes) == 1 else f"{len(dupes)} files are"
            self.toast.show_message(f"{what} already in the queue", ms=4000)
        elif added:
            self.statusBar().showMessage(f"Added {added} job{'s' if added != 1 else ''}", 4000)

    def _choose_target(self, targets: list[FileTarget]) -> FileTarget:
        last = self.settings.value("lastFileKind")
        for t in targets:
            if t.kind == last:
                return t
        return targets[0]

    # -- settings ---------------------------------------------------------------------------------

    def ui_settings(self) -> UiSettings:
        s = self.settings
        return UiSettings(
            theme=str(s.value("theme", "system")),
            confirm_quit=str(s.value("confirmQuit", "true")).lower() != "false",
            start_minimized=str(s.value("startMinimized", "false")).lower() == "true",
            close_to_tray=str(s.value("closeToTray", "false")).lower() == "true",
            notifications=str(s.value("notifications", "true")).lower() != "false",
            start_on_login=str(s.value("startOnLogin", "false")).lower() == "true",
        )

    def open_settings(self) -> None:
        self.bridge.spawn(self._settings_flow(), "Settings")

    async def _settings_flow(self) -> None:
        status = self.bridge.status
        dialog = SettingsDialog(
            status, self.bridge.groups(), self.ui_settings(), self, tray_available=self.tray_available()
        )
        self.settings_dialog = dialog
        try:
            if await ask(dialog) != SettingsDialog.DialogCode.Accepted:
                return
            values = dialog.values()
        finally:
            dialog.deleteLater()
            self.settings_dialog = None
        if values.max_concurrency != status.max_concurrency:
            await self.bridge.set_max_concurrency(values.max_concurrency)
        for g, limit in values.group_limits.items():
            old = next((x.limit for x in self.bridge.groups() if x.name == g), None)
            if limit != old:
                await self.bridge.set_group_limit(g, limit)
        if (values.retention_keep, values.retention_days) != (status.retention_keep, status.retention_days):
            await self.bridge.set_retention(values.retention_keep, values.retention_days)
        ui = values.ui
        self.settings.setValue("theme", ui.theme)
        self.settings.setValue("confirmQuit", ui.confirm_quit)
        self.settings.setValue("startMinimized", ui.start_minimized)
        self.settings.setValue("closeToTray", ui.close_to_tray)
        self.settings.setValue("notifications", ui.notifications)
        self.ui_settings_saved.emit(ui)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_theme(app, theme.env_theme() or ui.theme)

    def show_shortcuts(self) -> None:
        rows: set[tuple[str, str]] = set()
        for act in self.findChildren(QAction):
            keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            title = act.text().replace("&", "").replace("…", "")
            if act.objectName().startswith("action_schedule_"):
                title += " (Schedules)"  # the same key means another thing in that pane
            if keys:
                rows.add((title, keys))
        # a table: keys and actions in columns whatever the font
        cells = "".join(
            f"<tr><td>{html.escape(title)}</td>"
            f"<td style='padding-left:18px'><b>{html.escape(keys)}</b></td></tr>"
            for title, keys in sorted(rows, key=lambda r: (r[0].casefold(), r[1]))
        )
        box = message_box(
            self,
            name="shortcutsDialog",
            title="Keyboard shortcuts",
            text="Keyboard shortcuts",
            informative=f"<table>{cells}</table>",
            icon=QMessageBox.Icon.Information,
            choices=(),
        )
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        box.open()

    # -- state -----------------------------------------------------------------------------------

    def save_state(self) -> None:
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("windowState", self.saveState())
        s.setValue("splitter", self.splitter.saveState())
        s.setValue("contentSplitter", self.content.saveState())
        s.setValue("queueHeader", self.queue_pane.view.header().saveState())
        s.setValue("historyHeader", self.history_pane.view.horizontalHeader().saveState())
        s.setValue("pane", self.current_pane())
        s.setValue("details", self.action_details.isChecked())
        s.sync()

    def restore_state(self) -> None:
        s = self.settings

        def blob(key: str) -> QByteArray | None:
            v = s.value(key)
            return v if isinstance(v, QByteArray) and not v.isEmpty() else None

        if (g := blob("geometry")) is not None:
            self.restoreGeometry(g)
        else:
            self.resize(1360, 820)
        if (w := blob("windowState")) is not None:
            self.restoreState(w)
        # the splitter's sizes are restored once the window has its size (first show)
        self._pending_splitter = blob("splitter")
        self._pending_content = blob("contentSplitter")
        if (qh := blob("queueHeader")) is not None:
            self.queue_pane.view.header().restoreState(qh)
            self.queue_pane.sort_by_queue_order()
        if (hh := blob("historyHeader")) is not None:
            self.history_pane.view.horizontalHeader().restoreState(hh)
        details = s.value("details")
        if details is not None:
            self.show_details(str(details).lower() == "true")
        pane = s.value("pane")
        if pane is not None and str(pane).isdigit():
            self.show_pane(int(str(pane)))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        pending, self._pending_splitter = self._pending_splitter, None
        if pending is not None:
            self.splitter.restoreState(pending)
        content, self._pending_content = self._pending_content, None
        if content is not None:
            self.content.restoreState(content)

    # -- closing ----------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.allow_close:
            event.accept()
            return
        event.ignore()
        if self.close_hook is not None and self.close_hook():
            return
        self.quit_requested.emit()

    def stop_timers(self) -> None:
        """Closing for good: nothing may tick on a window about to be deleted."""
        self._overall_timer.stop()
        self.queue_model.stop()
        self.details.stop()
        # and the panes' own (overlay refresh, action states, the history search, the toast):
        # a slot running after the engine stopped would call into a closed bridge
        for timer in self.findChildren(QTimer):
            timer.stop()

    def running_count(self) -> int:
        return sum(
            1 for r in self.queue_model.records() if r.state == TaskState.RUNNING and r.parent_id is None
        )


def call_soon(fn: Callable[[], Awaitable[Any]]) -> None:  # pragma: no cover - helper for hooks
    QTimer.singleShot(0, lambda: fn())
