"""The Queue pane: the task tree in dispatch order with its actions, filter chips,
banners and empty state. It shows the model and calls the bridge; it decides nothing."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QContextMenuEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QMenu,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from core import TaskRecord, TaskState
from desktop.bridge import Bridge
from desktop.dialogs.common import confirm
from desktop.models.proxy import QueueFilter
from desktop.models.queue import QueueModel
from desktop.models.roles import QUEUE_HEADERS, QueueColumn, Role
from desktop.views.widgets import Banner, EmptyState, FilterChips, ProgressDelegate, name, table_header
from desktop.vocabulary import Category, priority_steps

_QUEUED = (TaskState.PENDING, TaskState.PAUSED)
CATEGORY_TITLES = {
    Category.RUNNING: "Running",
    Category.QUEUED: "Queued",
    Category.PAUSED: "Paused",
    Category.BLOCKED: "Blocked",
    Category.FAILED: "Failed",
    Category.COMPLETED: "Completed",
    Category.CANCELLED: "Cancelled",
}


OUTPUT_KEYS = ("output_dir", "output_folder", "output", "destination")


def output_folder(rec: TaskRecord) -> str | None:
    """The folder a job writes to, from its result or payload (None: it names none)."""
    for source in (rec.result, rec.payload):
        if isinstance(source, dict):
            for key in OUTPUT_KEYS:
                value = source.get(key)
                if isinstance(value, str) and value and os.path.isdir(value):
                    return value
    return None


class QueueView(QTreeView):
    """The tree; its context menu works on the whole row, wherever it is clicked.

    Signals:
        context_menu_requested(QPoint): the global position of a right click.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.menu: QMenu | None = None

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        index = self.indexAt(event.pos())
        if index.isValid() and not self.selectionModel().isRowSelected(index.row(), index.parent()):
            self.selectionModel().setCurrentIndex(
                index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
        if self.menu is not None:
            self.menu.popup(event.globalPos())


class QueuePane(QWidget):
    """Signals:
    current_changed(object): the selected task id (int) or None.
    add_requested(): the user wants to add a job (empty state, toolbar).
    files_dropped(list[str]): files dropped on the queue.
    """

    current_changed = Signal(object)
    add_requested = Signal()
    files_dropped = Signal(object)

    def __init__(self, bridge: Bridge, model: QueueModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "queuePane", "Queue")
        self.bridge = bridge
        self.model = model
        self._active = True
        self.proxy = QueueFilter(self)
        self.proxy.setSourceModel(model)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.recovery_banner = Banner("recoveryBanner", "success")
        self.attach_banner = Banner("attachBanner", "info")
        self.mode_banner = Banner("modeBanner", "warning")
        self.sort_banner = Banner("sortBanner", "info")
        for b in (self.recovery_banner, self.attach_banner, self.mode_banner, self.sort_banner):
            lay.addWidget(b)
        self.chips = FilterChips("queueChips")
        lay.addWidget(self.chips)
        self.view = QueueView()
        name(self.view, "queueView", "Queue: jobs in the order they run")
        self.view.setModel(self.proxy)
        self.view.setUniformRowHeights(True)
        self.view.setAlternatingRowColors(True)
        self.view.setRootIsDecorated(True)
        self.view.setAllColumnsShowFocus(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setDragEnabled(True)
        self.view.setAcceptDrops(True)
        self.view.setDropIndicatorShown(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setItemDelegateForColumn(QueueColumn.PROGRESS, ProgressDelegate(self.view))
        header = self.view.header()
        table_header(
            header,
            "queueHeader",
            (
                (QueueColumn.NAME, 230),
                (QueueColumn.KIND, 105),
                (QueueColumn.STATE, 270),
                (QueueColumn.PRIORITY, 70),
                (QueueColumn.PROGRESS, 120),
                (QueueColumn.SPEED, 85),
                (QueueColumn.ETA, 80),
                (QueueColumn.GROUP, 150),
                (QueueColumn.ADDED, 60),
            ),
            movable=True,
        )
        header.setSortIndicatorClearable(True)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        self.view.setSortingEnabled(True)
        header.sortIndicatorChanged.connect(self._sort_changed)
        lay.addWidget(self.view, 1)
        self.empty = EmptyState("queueEmpty", self.view.viewport())
        self.empty.clicked.connect(self._empty_clicked)
        self.empty.files_dropped.connect(self.files_dropped.emit)
        self.chips.removed.connect(self._chip_removed)
        self.chips.cleared.connect(self.clear_filters)
        model.files_dropped.connect(self.files_dropped.emit)
        model.reorder_requested.connect(self._reorder)
        for sig in (model.rowsInserted, model.rowsRemoved, model.loaded):
            sig.connect(self._refresh_later)
        self.proxy.rowsInserted.connect(self._refresh_later)
        self.proxy.rowsRemoved.connect(self._refresh_later)
        self.proxy.layoutChanged.connect(self._refresh_later)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.view.selectionModel().currentRowChanged.connect(self._selection_changed)
        model.dataChanged.connect(self._data_changed)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh_overlay)
        self.actions_by_name: dict[str, QAction] = {}
        self._make_actions()
        self.refresh_overlay()
        self.update_actions()

    # -- actions ------------------------------------------------------------------------------

    def _action(
        self,
        key: str,
        text: str,
        slot: Callable[[], None],
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        tip: str = "",
    ) -> QAction:
        a = QAction(text, self)
        a.setObjectName(f"action_{key}")
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        plain = text.replace("&", "").replace("…", "")
        a.setToolTip(
            f"{tip or plain} ({a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
            if shortcut
            else tip or plain
        )
        a.setStatusTip(tip or plain)
        a.triggered.connect(lambda _=False: slot())
        self.actions_by_name[key] = a
        return a

    def _make_actions(self) -> None:
        A = self._action
        A("pause", "&Pause", self.pause_selected, None, "Pause the selected jobs; they keep their progress")
        A("resume", "&Resume", self.resume_selected, None, "Resume the selected jobs")
        A(
            "toggle_pause",
            "Pause/Resume",
            self.toggle_pause_selected,
            "Space",
            "Pause or resume the selected jobs",
        )
        A(
            "cancel",
            "&Cancel…",
            self.cancel_selected,
            QKeySequence.StandardKey.Delete,
            "Cancel the selected jobs",
        )
        A("retry", "Re&try", self.retry_selected, "Ctrl+R", "Run the selected failed or cancelled jobs again")
        A("priority_up", "Priority &up", lambda: self.change_priority(-1), "Ctrl+Up", "Make more urgent")
        A("priority_down", "Priority &down", lambda: self.change_priority(1), "Ctrl+Down", "Make less urgent")
        A(
            "run_next",
            "Run &next",
            self.run_next_selected,
            "Ctrl+Shift+N",
            "Start these before any other queued job",
        )
        A(
            "move_up",
            "Move up",
            lambda: self.move_selected("up"),
            "Alt+Up",
            "Move one place earlier in the queue",
        )
        A("move_down", "Move down", lambda: self.move_selected("down"), "Alt+Down", "Move one place later")
        A(
            "move_top",
            "Move to top",
            lambda: self.move_selected("top"),
            "Ctrl+Home",
            "Move to the top of the queue",
        )
        A(
            "move_bottom",
            "Move to bottom",
            lambda: self.move_selected("bottom"),
            "Ctrl+End",
            "Move to the end",
        )
        A(
            "open_output",
            "&Open output folder",
            self.open_output,
            "Ctrl+O",
            "Open the folder the job writes to",
        )
        A("details", "&Details", self._show_details, "Return", "Show the selected job's details")
        A("clear_completed", "Clear completed", lambda: self.clear_finished(Category.COMPLETED), None,
          "Take this session's completed jobs out of the queue (History keeps them)")  # fmt: skip
        A("clear_finished", "Clear all finished", lambda: self.clear_finished(None), None,
          "Take this session's finished jobs out of the queue (History keeps them)")  # fmt: skip
        A(
            "queue_order",
            "Sort by queue order",
            self.sort_by_queue_order,
            None,
            "Show jobs in the order they run",
        )
        keyboard = ("move_up", "move_down", "move_top", "move_bottom", "toggle_pause", "cancel", "details")
        for focused in keyboard:
            # keyboard reorder belongs to the list: these apply while it has the focus
            self.actions_by_name[focused].setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(self.actions_by_name[focused])
        menu = QMenu(self.view)
        menu.setObjectName("queueContextMenu")
        menu.setAccessibleName("Job actions")
        menu_keys: tuple[str | None, ...] = (
            *("pause", "resume", "cancel", "retry", None, "run_next", "priority_up", "priority_down"),
            *("move_top", "move_bottom", None, "open_output", "details"),
        )
        for key in menu_keys:
            if key is None:
                menu.addSeparator()
            else:
                menu.addAction(self.actions_by_name[key])
        self.view.menu = menu

    def selected_ids(self) -> list[int]:
        rows = self.view.selectionModel().selectedRows(0)
        ids: list[int] = []
        for index in sorted(rows, key=lambda i: (self._depth(i), i.row())):
            task_id = index.data(Role.TASK_ID)
            if task_id is not None and task_id not in ids:
                ids.append(int(task_id))
        return ids

    @staticmethod
    def _depth(index: QModelIndex) -> int:
        d = 0
        while index.parent().isValid():
            index = index.parent()
            d += 1
        return d

    def selected_records(self) -> list[TaskRecord]:
        out = []
        for i in self.selected_ids():
            rec = self.model.record(i)
            if rec is not None:
                out.append(rec)
        return out

    def set_active(self, active: bool) -> None:
        """Whether the Queue is the pane on show. The toolbar and the Jobs menu hold this
        pane's actions: while another pane shows, they have no visible selection to act
        on, so they are off (Ctrl+R on History must not retry a job the user cannot see)."""
        self._active = active
        self.update_actions()

    def current_task_id(self) -> int | None:
        """The task selected alone, if one is."""
        ids = self.selected_ids()
        return ids[0] if len(ids) == 1 else None

    def update_actions(self) -> None:
        recs = self.selected_records() if self._active else []
        active = [r for r in recs if not r.is_terminal]
        queued = [r for r in recs if r.state in _QUEUED]
        pausable = [r for r in active if "user" not in r.pause_reasons and r.state != TaskState.WAITING]
        resumable = [r for r in active if {"user", "preempted"} & set(r.pause_reasons)]
        retryable = [r for r in recs if r.state in (TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED)]
        a = self.actions_by_name
        a["pause"].setEnabled(bool(pausable))
        a["resume"].setEnabled(bool(resumable))
        a["toggle_pause"].setEnabled(bool(pausable or resumable))
        a["cancel"].setEnabled(bool(active))
        a["retry"].setEnabled(bool(retryable))
        a["priority_up"].setEnabled(any(r.priority > 0 for r in active))
        a["priority_down"].setEnabled(any(r.priority < 255 for r in active))
        a["run_next"].setEnabled(bool(queued))
        one = len(queued) == 1 and len(recs) == 1
        for key in ("move_up", "move_down", "move_top", "move_bottom"):
            a[key].setEnabled(one)
        a["details"].setEnabled(len(recs) == 1)
        a["open_output"].setEnabled(len(recs) == 1 and output_folder(recs[0]) is not None)
        finished = self.model.counts()
        done = finished.get(Category.COMPLETED, 0)
        a["clear_completed"].setEnabled(done > 0)
        a["clear_finished"].setEnabled(
            any(finished.get(c, 0) for c in (Category.COMPLETED, Category.FAILED, Category.CANCELLED))
        )
        a["queue_order"].setEnabled(self.view.header().sortIndicatorSection() >= 0)

    def _selection_changed(self) -> None:
        self.update_actions()
        self.current_changed.emit(self.current_task_id())

    def _data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex) -> None:
        selection = self.view.selectionModel()
        if selection.hasSelection():
            # a selected row changed state: what its actions may do changed too
            self._actions_timer_start()

    def _actions_timer_start(self) -> None:
        if not hasattr(self, "_actions_timer"):
            self._actions_timer = QTimer(self)
            self._actions_timer.setSingleShot(True)
            self._actions_timer.setInterval(100)
            self._actions_timer.timeout.connect(self.update_actions)
        if not self._actions_timer.isActive():
            self._actions_timer.start()

    # -- what the actions do -----------------------------------------------------------------

    def pause_selected(self) -> None:
        ids = [r.id for r in self.selected_records() if not r.is_terminal and "user" not in r.pause_reasons]
        if ids:
            self.bridge.spawn(self.bridge.pause(ids), "Pause")

    def resume_selected(self) -> None:
        ids = [r.id for r in self.selected_records() if {"user", "preempted"} & set(r.pause_reasons)]
        if ids:
            self.bridge.spawn(self.bridge.resume(ids), "Resume")

    def toggle_pause_selected(self) -> None:
        recs = self.selected_records()
        if any({"user", "preempted"} & set(r.pause_reasons) for r in recs):
            self.resume_selected()
        else:
            self.pause_selected()

    def cancel_selected(self) -> None:
        recs = [r for r in self.selected_records() if not r.is_terminal]
        if recs:
            self.bridge.spawn(self._cancel_flow(recs), "Cancel")

    async def _cancel_flow(self, recs: list[TaskRecord]) -> None:
        running = [r for r in recs if r.state in (TaskState.RUNNING, TaskState.WAITING)]
        if running:
            if len(recs) == 1:
                text = f"Cancel “{recs[0].name}”?"
                info = "It is running: the work it has done so far is lost."
            else:
                text = f"Cancel {len(recs)} jobs?"
                verb = "is" if len(running) == 1 else "are"
                info = f"{len(running)} of them {verb} running: their work so far is lost."
            answer = await confirm(
                self,
                name="confirmCancel",
                title="Cancel running job" if len(recs) == 1 else "Cancel jobs",
                text=text,
                informative=info,
                accept="Cancel job" if len(recs) == 1 else f"Cancel {len(recs)} jobs",
                destructive=True,
            )
            if answer.choice != "accept":
                return
        await self.bridge.cancel([r.id for r in recs])

    def retry_selected(self) -> None:
        ids = [
            r.id
            for r in self.selected_records()
            if r.state in (TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED)
        ]
        if ids:
            self.bridge.spawn(self.bridge.retry(ids), "Retry")

    def change_priority(self, direction: int) -> None:
        for r in self.selected_records():
            if not r.is_terminal:
                p = priority_steps(r.priority, direction)
                if p != r.priority:
                    self.bridge.spawn(self.bridge.set_priority([r.id], p), "Priority")

    def run_next_selected(self) -> None:
        ids = [r.id for r in self.selected_records() if r.state in _QUEUED]
        if ids:
            self._ensure_queue_order()
            self.bridge.spawn(self.bridge.run_next(ids), "Run next")

    def move_selected(self, where: str) -> None:
        recs = self.selected_records()
        if len(recs) != 1 or recs[0].state not in _QUEUED:
            return
        rec = recs[0]
        self._ensure_queue_order()
        level = self._level(rec)
        queued = [i for i in level if (r := self.model.record(i)) is not None and r.state in _QUEUED]
        n = queued.index(rec.id)
        if where == "top":
            self.bridge.spawn(self.bridge.move(rec.id, to="top"), "Move")
        elif where == "bottom":
            self.bridge.spawn(self.bridge.move(rec.id, to="bottom"), "Move")
        elif where == "up" and n > 0:
            self.bridge.spawn(self.bridge.move(rec.id, before=queued[n - 1]), "Move")
        elif where == "down" and n + 1 < len(queued):
            if n + 2 < len(queued):
                self.bridge.spawn(self.bridge.move(rec.id, before=queued[n + 2]), "Move")
            else:
                self.bridge.spawn(self.bridge.move(rec.id, to="bottom"), "Move")

    def _level(self, rec: TaskRecord) -> list[int]:
        if rec.parent_id is not None and self.model.record(rec.parent_id) is not None:
            return self.model.children_ids(rec.parent_id)
        return self.model.top_level_ids()

    def _reorder(self, ids: list[int], before: int | None) -> None:
        self._ensure_queue_order()

        async def go() -> None:
            for i in ids:
                if before is None:
                    await self.bridge.move(i, to="bottom")
                else:
                    await self.bridge.move(i, before=before)

        self.bridge.spawn(go(), "Move")

    def clear_finished(self, only: Category | None) -> None:
        n = self.model.clear_finished(only)
        if n:
            self.window().statusBar().showMessage(  # type: ignore[attr-defined]
                f"Took {n} finished job{'s' if n != 1 else ''} out of the queue (History keeps them)", 4000
            )

    def open_output(self) -> None:
        recs = self.selected_records()
        folder = output_folder(recs[0]) if len(recs) == 1 else None
        if folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def _show_details(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.current_changed.emit(ids[0])
            win = self.window()
            show = getattr(win, "show_details", None)
            if show is not None:
                show(True)

    # -- sorting --------------------------------------------------------------------------------

    def _ensure_queue_order(self) -> None:
        """Reordering only makes sense in queue order: switch to it and say so (ux Q-09)."""
        header = self.view.header()
        section = header.sortIndicatorSection()
        if section >= 0:
            title = QUEUE_HEADERS[section] if section < len(QUEUE_HEADERS) else "a column"
            self.sort_by_queue_order()
            self.sort_banner.show_message(
                f"The list was sorted by {title}; it now shows the queue order, "
                "so you can see where the job moved."
            )

    def sort_by_queue_order(self) -> None:
        self.view.header().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.proxy.sort(-1)

    def _sort_changed(self, section: int, order: Qt.SortOrder) -> None:
        if section < 0:
            self.proxy.sort(-1)
        else:
            self.sort_banner.hide()
        self.update_actions()

    def _header_menu(self, pos: QPoint) -> None:
        header = self.view.header()
        menu = QMenu(self)
        menu.setObjectName("queueColumnsMenu")
        for col, title in enumerate(QUEUE_HEADERS):
            a = menu.addAction(title)
            a.setCheckable(True)
            a.setChecked(not header.isSectionHidden(col))
            a.setEnabled(col != QueueColumn.NAME)
            a.toggled.connect(lambda on, c=col: header.setSectionHidden(c, not on))
        menu.popup(header.mapToGlobal(pos))

    # -- filters --------------------------------------------------------------------------------

    def set_category(self, category: Category | None) -> None:
        self.proxy.set_category(category)
        self._update_chips()

    def set_search(self, text: str) -> None:
        self.proxy.set_search(text)
        self._update_chips()

    def clear_filters(self) -> None:
        self.proxy.set_category(None)
        self.proxy.set_search("")
        self._update_chips()
        self.filters_cleared()

    def filters_cleared(self) -> None:
        win = self.window()
        hook = getattr(win, "on_queue_filters_cleared", None)
        if hook is not None:
            hook()

    def _chip_removed(self, key: str) -> None:
        if key == "category":
            self.proxy.set_category(None)
        elif key == "search":
            self.proxy.set_search("")
        self._update_chips()
        self.filters_cleared() if not self.proxy.active else self._notify_partial(key)

    def _notify_partial(self, key: str) -> None:
        win = self.window()
        hook = getattr(win, "on_queue_filter_removed", None)
        if hook is not None:
            hook(key)

    def _update_chips(self) -> None:
        chips: list[tuple[str, str]] = []
        if self.proxy.search:
            chips.append(("search", f"Text: “{self.proxy.search}”"))
        if self.proxy.category is not None:
            chips.append(("category", f"State: {CATEGORY_TITLES[self.proxy.category]}"))
        self.chips.set_chips(chips, self.proxy.rowCount() if chips else None)
        self.refresh_overlay()

    # -- empty state ------------------------------------------------------------------------------

    def _refresh_later(self, *args: object) -> None:
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def refresh_overlay(self) -> None:
        if self.proxy.active:
            self.chips.set_chips(
                [(k, t) for k, t in self._chip_pairs()],
                self.proxy.rowCount(),
            )
        if self.proxy.rowCount() > 0:
            self.empty.hide()
        elif not self.model.is_loaded and self.model.rowCount() == 0:
            self.empty.show_state("Loading the queue…")
        elif self.proxy.active:
            self.empty.show_state("No jobs match these filters.", "", "Clear filters")
        else:
            self.empty.show_state(
                "Drop files here or click Add",
                "Jobs you add wait here in the order they will run.",
                "Add…",
                accept_files=True,
            )

    def _chip_pairs(self) -> list[tuple[str, str]]:
        out = []
        if self.proxy.search:
            out.append(("search", f"Text: “{self.proxy.search}”"))
        if self.proxy.category is not None:
            out.append(("category", f"State: {CATEGORY_TITLES[self.proxy.category]}"))
        return out

    def _empty_clicked(self) -> None:
        if self.proxy.active:
            self.clear_filters()
        else:
            self.add_requested.emit()

    # -- helpers for tests and the window -------------------------------------------------------

    def select_task(self, task_id: int) -> None:
        src = self.model.index_of(task_id)
        index = self.proxy.mapFromSource(src)
        if index.isValid():
            self.view.selectionModel().setCurrentIndex(
                index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
            self.view.scrollTo(index)

    def visible_rows(self) -> list[list[str]]:
        """The texts of the shown top-level rows, column by column (tests read them)."""
        out = []
        for r in range(self.proxy.rowCount()):
            out.append([str(self.proxy.index(r, c).data() or "") for c in range(self.proxy.columnCount())])
        return out
