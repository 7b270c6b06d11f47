"""Small widgets the panes share: the progress delegate, banners, toasts, filter chips
and the empty state. Their look comes from the theme's QSS (objectName and properties)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QPainter, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop import theme
from desktop.models.roles import Role


def name(widget: QWidget, object_name: str, accessible: str) -> None:
    """Every control gets an objectName (tests, QSS) and an accessible name."""
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible)


def table_header(
    header: QHeaderView, object_name: str, widths: Iterable[tuple[int, int]], *, movable: bool = False
) -> None:
    """A list's column header as every pane has it: named, left-aligned titles, columns
    the user resizes (the last one stretches), these starting widths."""
    header.setObjectName(object_name)
    header.setSectionsMovable(movable)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    for col, width in widths:
        header.resizeSection(col, width)


def restyle(widget: QWidget) -> None:
    """Re-apply QSS after a dynamic property changed."""
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


def set_style_property(widget: QWidget, key: str, value: object) -> None:
    """Set a dynamic property the QSS selects on, re-applying the style if it changed."""
    if widget.property(key) != value:
        widget.setProperty(key, value)
        restyle(widget)


class ProgressDelegate(QStyledItemDelegate):
    """A progress bar with its percentage, for the Progress column."""

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        fraction = index.data(Role.PROGRESS)
        if fraction is None:
            super().paint(painter, option, index)
            return
        # draw the selection/background first, then the bar inside the cell
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(option.rect).adjusted(3, 3, -3, -3)
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = round(max(0.0, min(1.0, float(fraction))) * 1000)
        bar.text = f"{int(float(fraction) * 100)} %"
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = QPalette(option.palette)
        accent = theme.colors().bar
        bar.palette.setColor(QPalette.ColorRole.Highlight, accent)
        bar.palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
        if index.data(Role.FINISHED):
            bar.state &= ~QStyle.StateFlag.State_Enabled
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, opt.widget)


class Banner(QFrame):
    """A strip across the top of a pane: a message, optional actions, a close button.

    Signals:
        action(str): the objectName of the action button pressed.
    """

    action = Signal(str)

    def __init__(self, object_name: str, kind: str = "info", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, object_name, "Notice")
        self.setProperty("kind", kind)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        name(self.label, f"{object_name}Text", "Notice text")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.label, 1)
        self._buttons = QHBoxLayout()
        lay.addLayout(self._buttons)
        close = QToolButton()
        name(close, f"{object_name}Close", "Dismiss notice")
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self._close = close
        lay.addWidget(close)
        self.hide()

    def show_message(
        self, text: str, actions: tuple[tuple[str, str], ...] = (), closable: bool = True
    ) -> None:
        self.label.setText(text)
        self.setAccessibleDescription(text)
        while self._buttons.count():
            item = self._buttons.takeAt(0)
            w = item.widget() if item is not None else None
            if w is not None:
                w.deleteLater()
        for object_name, label in actions:
            b = QPushButton(label)
            name(b, object_name, label.replace("&", ""))
            b.clicked.connect(lambda _=False, n=object_name: self.action.emit(n))
            self._buttons.addWidget(b)
        self._close.setVisible(closable)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class Toast(QFrame):
    """A non-modal note at the bottom of the window that goes by itself.

    Signals:
        action(str): its button was pressed (e.g. "undo").
        expired(str): it went without its button being pressed.
    """

    action = Signal(str)
    expired = Signal(str)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        name(self, "toast", "Notification")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 8, 8, 8)
        self.label = QLabel()
        name(self.label, "toastText", "Notification text")
        lay.addWidget(self.label, 1)
        self.button = QPushButton()
        name(self.button, "toastAction", "Notification action")
        self.button.clicked.connect(self._pressed)
        lay.addWidget(self.button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._expire)
        self._tag = ""
        parent.installEventFilter(self)
        self.hide()

    def show_message(self, text: str, *, action: str = "", tag: str = "", ms: int = 4000) -> None:
        if self._tag and self._timer.isActive():
            self._expire()  # a pending Undo is committed before another toast takes its place
        self._tag = tag
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.button.setVisible(bool(action))
        self.button.setText(action)
        self.button.setAccessibleName(action.replace("&", "") or "Notification action")
        self._place()
        self.show()
        self.raise_()
        self._timer.start(ms)

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def holds_action(self) -> bool:
        """It offers a button (Undo…) that another toast would take away."""
        return bool(self._tag) and self._timer.isActive()

    def _pressed(self) -> None:
        tag, self._tag = self._tag, ""
        self._timer.stop()
        self.hide()
        self.action.emit(tag)

    def _expire(self) -> None:
        tag, self._tag = self._tag, ""
        self._timer.stop()
        self.hide()
        if tag:
            self.expired.emit(tag)

    def flush(self) -> None:
        """Expire now (quitting: a pending clear is committed)."""
        if self.isVisible():
            self._expire()

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        self.adjustSize()
        w = min(max(self.sizeHint().width(), 320), parent.width() - 40)
        self.resize(w, self.sizeHint().height())
        self.move((parent.width() - w) // 2, parent.height() - self.height() - 36)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False


class FilterChips(QFrame):
    """The active filters as removable chips, and "Clear filters".

    Signals:
        removed(str): a chip's key was removed ("search", "category", ...).
        cleared(): "Clear filters" was pressed.
    """

    removed = Signal(str)
    cleared = Signal()

    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, object_name, "Active filters")
        self._lay = QHBoxLayout(self)
        self._lay.setContentsMargins(8, 2, 8, 2)
        self._lay.setSpacing(6)
        self._chips: dict[str, QPushButton] = {}
        self._count = QLabel()
        name(self._count, f"{object_name}Count", "Rows shown")
        self._clear = QPushButton("Clear filters")
        name(self._clear, f"{object_name}Clear", "Clear filters")
        self._clear.setFlat(True)
        self._clear.clicked.connect(self.cleared.emit)
        self._prefix = object_name
        self.hide()

    def set_chips(self, chips: list[tuple[str, str]], shown: int | None = None) -> None:
        """(key, text) pairs; an empty list hides the strip."""
        for b in self._chips.values():
            self._lay.removeWidget(b)
            b.deleteLater()
        self._chips.clear()
        self._lay.removeWidget(self._count)
        self._lay.removeWidget(self._clear)
        while self._lay.count():
            self._lay.takeAt(0)
        for key, text in chips:
            b = QPushButton(f"{text}  ✕")
            name(b, f"{self._prefix}Chip_{key}", f"Remove filter {text}")
            b.setProperty("chip", True)
            b.setToolTip(f"Remove the filter “{text}”")
            b.clicked.connect(lambda _=False, k=key: self.removed.emit(k))
            self._lay.addWidget(b)
            self._chips[key] = b
        self._lay.addWidget(self._clear)
        self._lay.addStretch(1)
        self._lay.addWidget(self._count)
        self._count.setText("" if shown is None else f"{shown} shown")
        self.setVisible(bool(chips))

    def chip_texts(self) -> list[str]:
        return [b.text().replace("  ✕", "") for b in self._chips.values()]

    def chip(self, key: str) -> QPushButton | None:
        return self._chips.get(key)


class EmptyState(QFrame):
    """What an empty pane says, centred over its view, with an optional button; it also
    takes dropped files (it sits where the drop lands).

    Signals:
        clicked(): its button was pressed.
        files_dropped(list[str]): files dropped on it.
    """

    clicked = Signal()
    files_dropped = Signal(object)

    def __init__(self, object_name: str, parent: QWidget) -> None:
        super().__init__(parent)
        name(self, object_name, "Empty list")
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        self.title = QLabel()
        name(self.title, f"{object_name}Title", "Empty list message")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.hint = QLabel()
        name(self.hint, f"{object_name}Hint", "Empty list hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.button = QPushButton()
        name(self.button, f"{object_name}Button", "Add a job")
        self.button.clicked.connect(self.clicked.emit)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        row.addStretch(1)
        lay.addWidget(self.title)
        lay.addWidget(self.hint)
        lay.addSpacing(8)
        lay.addLayout(row)
        lay.addStretch(2)
        self.setAcceptDrops(True)
        self._accept_files = False
        parent.installEventFilter(self)
        self.hide()

    def show_state(self, title: str, hint: str = "", button: str = "", *, accept_files: bool = False) -> None:
        self.title.setText(title)
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))
        self.button.setText(button)
        self.button.setAccessibleName(button.replace("&", "").replace("…", "") or "Empty list action")
        self.button.setVisible(bool(button))
        self.setAccessibleDescription(f"{title} {hint}".strip())
        self._accept_files = accept_files
        self._fit()
        self.show()
        self.raise_()

    def message(self) -> str:
        return self.title.text() if self.isVisible() else ""

    def _fit(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._fit()
        return False

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._accept_files and event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)


def connect_later(fn: Callable[[], None], ms: int = 0) -> None:
    QTimer.singleShot(ms, fn)
