"""The sidebar: the queue's filters with their counts, and History."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from desktop.views.queue_pane import CATEGORY_TITLES
from desktop.views.widgets import name
from desktop.vocabulary import Category

ALL = "all"
HISTORY = "history"
SCHEDULES = "schedules"
ENTRIES: tuple[tuple[str, str], ...] = (
    (ALL, "All jobs"),
    *((c.value, CATEGORY_TITLES[c]) for c in Category),
    (HISTORY, "History"),
    (SCHEDULES, "Schedules"),
)
PANE_KEYS = (HISTORY, SCHEDULES)  # entries that open a pane rather than filter the queue
KEY_ROLE = int(Qt.ItemDataRole.UserRole) + 1


class Sidebar(QListView):
    """Signals:
    chosen(str): "all", a Category value, "history" or "schedules".
    """

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "sidebar", "Filters")
        self.entries = QStandardItemModel(self)
        self.entries.setObjectName("sidebarModel")
        for key, title in ENTRIES:
            item = QStandardItem(title)
            item.setData(key, KEY_ROLE)
            item.setEditable(False)
            item.setData(title, Qt.ItemDataRole.AccessibleTextRole)
            self.entries.appendRow(item)
        self.setModel(self.entries)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setUniformItemSizes(True)
        self.selectionModel().currentChanged.connect(self._changed)
        self.select(ALL)

    def _changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        key = current.data(KEY_ROLE)
        if key:
            self.chosen.emit(str(key))

    def select(self, key: str) -> None:
        for row in range(self.entries.rowCount()):
            item = self.entries.item(row)
            if item is not None and item.data(KEY_ROLE) == key:
                self.selectionModel().setCurrentIndex(
                    item.index(), QItemSelectionModel.SelectionFlag.ClearAndSelect
                )
                return

    def current_key(self) -> str:
        return str(self.currentIndex().data(KEY_ROLE) or ALL)

    def set_counts(self, counts: dict[Category, int]) -> None:
        total = sum(counts.values())
        for row in range(self.entries.rowCount()):
            item = self.entries.item(row)
            key = str(item.data(KEY_ROLE))
            title = dict(ENTRIES)[key]
            if key in PANE_KEYS:
                continue
            n = total if key == ALL else counts.get(Category(key), 0)
            text = f"{title}  ({n})"
            if item.text() != text:
                item.setText(text)
                item.setData(f"{title}, {n}", Qt.ItemDataRole.AccessibleTextRole)

    def text_of(self, key: str) -> str:
        for row in range(self.entries.rowCount()):
            item = self.entries.item(row)
            if item is not None and item.data(KEY_ROLE) == key:
                return item.text()
        return ""
