"""The Queue pane's filter: a sidebar category and the search text, on top-level rows
(a shown parent shows all its parts). Sorting by a column is the user's choice; with no
sort column the rows keep the queue (dispatch) order."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt

from desktop.models.roles import Role
from desktop.vocabulary import Category


class QueueFilter(QSortFilterProxyModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._category: Category | None = None
        self._search = ""
        self.setSortRole(Role.SORT)
        self.setAutoAcceptChildRows(True)
        self.setDynamicSortFilter(True)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    @property
    def category(self) -> Category | None:
        return self._category

    @property
    def search(self) -> str:
        return self._search

    def set_category(self, category: Category | None) -> None:
        if category != self._category:
            self._refilter(lambda: setattr(self, "_category", category))

    def set_search(self, text: str) -> None:
        text = text.strip().lower()
        if text != self._search:
            self._refilter(lambda: setattr(self, "_search", text))

    def _refilter(self, change: Callable[[], None]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10; invalidateRowsFilter before it
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # pragma: no cover - older Qt
            change()
            self.invalidateRowsFilter()

    @property
    def active(self) -> bool:
        return self._category is not None or bool(self._search)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if source_parent.isValid():
            return True
        if not self.active:
            return True
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        if self._category is not None and model.data(index, Role.CATEGORY) != self._category.value:
            return False
        if self._search:
            haystack = model.data(index, Role.SEARCH) or ""
            return all(word in haystack for word in self._search.split())
        return True
