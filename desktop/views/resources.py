"""The resources view: system pressure and each IO resource's use against its capacity,
each with a live sparkline of the last minute, drawn with QPainter (QtCharts would add a
large package for four lines). It opens as a popup from the status bar's button."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QToolButton, QWidget

from desktop.bridge import ResourceSample
from desktop.views.statusbar import ResourceMonitor
from desktop.views.widgets import name
from desktop.vocabulary import format_limit

# what the engine calls each resource, in the view's words
RESOURCE_NAMES = {
    "disk_read": "Disk read",
    "disk_write": "Disk write",
    "net_rx": "Network in",
    "net_tx": "Network out",
}


def io_fraction(sample: ResourceSample, resource: str) -> float:
    """How much of a resource's capacity is in use (0..1; 0 when unknown)."""
    row = sample.io.get(resource) or {}
    cap = float(row.get("capacity") or 0.0)
    return min(1.0, float(row.get("used") or 0.0) / cap) if cap > 0 else 0.0


def io_text(sample: ResourceSample, resource: str) -> str:
    row = sample.io.get(resource)
    if not row:
        return "capacity learned as it runs"
    cap = float(row.get("capacity") or 0.0)
    used = float(row.get("used") or 0.0)
    configured = " (set)" if row.get("configured") else ""
    if not sample.live:
        return f"capacity {format_limit(cap)}{configured}"
    if cap <= 0:
        pct = ""
    elif used > cap:
        pct = " (over capacity)"
    else:
        pct = f" ({100 * used / cap:.0f} %)"
    return f"{format_limit(used)} of {format_limit(cap)}{configured}{pct}"


def pressure_text(sample: ResourceSample) -> str:
    if not sample.live:
        return "known to the worker only"
    if sample.pressure <= 0:
        return "none"
    return f"{sample.pressure:.0%} ({sample.pressure_source or 'system'})"


class Sparkline(QWidget):
    """Values in 0..1, oldest first, as a line over a filled area; the colours come from the
    palette (Highlight), so both themes draw it readably."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: list[float] = []
        self.capacity = 60
        self.setMinimumSize(140, 28)

    def sizeHint(self) -> QSize:
        return QSize(160, 30)

    def set_values(self, values: Sequence[float]) -> None:
        self.values = [min(1.0, max(0.0, v)) for v in values][-self.capacity :]
        self.update()

    def points(self) -> list[QPointF]:
        """Where the values fall in the widget (the newest at the right edge)."""
        r = QRectF(self.rect()).adjusted(1, 2, -1, -2)
        step = r.width() / max(1, self.capacity - 1)
        start = r.right() - step * (len(self.values) - 1)
        return [QPointF(start + i * step, r.bottom() - v * r.height()) for i, v in enumerate(self.values)]

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            pal = self.palette()
            p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
            p.setPen(QPen(pal.color(QPalette.ColorRole.Mid), 1))
            p.drawRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5))
            pts = self.points()
            if len(pts) < 2:
                return
            line = pal.color(QPalette.ColorRole.Highlight)
            if line.lightness() > 180:  # a pale selection colour (light theme): use the text's
                line = pal.color(QPalette.ColorRole.Link)
            fill = line.lighter(100)
            fill.setAlpha(60)
            area = QPainterPath(QPointF(pts[0].x(), self.height() - 2))
            for pt in pts:
                area.lineTo(pt)
            area.lineTo(QPointF(pts[-1].x(), self.height() - 2))
            area.closeSubpath()
            p.fillPath(area, fill)
            path = QPainterPath(pts[0])
            for pt in pts[1:]:
                path.lineTo(pt)
            p.setPen(QPen(line, 1.5))
            p.drawPath(path)
        finally:
            p.end()


class ResourcesView(QFrame):
    """Pressure and IO: one row each with its figure and a sparkline of the last minute."""

    def __init__(self, monitor: ResourceMonitor, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        name(self, "resourcesView", "Resources")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.monitor = monitor
        grid = QGridLayout(self)
        grid.setContentsMargins(12, 10, 12, 10)
        grid.setHorizontalSpacing(12)
        self.title = QLabel("Machine resources")
        self.title.setObjectName("resourcesTitle")
        grid.addWidget(self.title, 0, 0, 1, 3)
        self.values: dict[str, QLabel] = {}
        self.lines: dict[str, Sparkline] = {}
        for row, (key, title) in enumerate((("pressure", "Pressure"), *RESOURCE_NAMES.items()), start=1):
            label = QLabel(title)
            value = QLabel()
            name(value, f"resource_{key}", title)
            line = Sparkline()
            name(line, f"spark_{key}", f"{title}, last minute")
            grid.addWidget(label, row, 0)
            grid.addWidget(value, row, 1)
            grid.addWidget(line, row, 2)
            self.values[key] = value
            self.lines[key] = line
        self.note = QLabel()
        self.note.setObjectName("resourcesNote")
        self.note.setWordWrap(True)
        grid.addWidget(self.note, len(RESOURCE_NAMES) + 2, 0, 1, 3)
        monitor.sampled.connect(self.show_sample)

    def show_sample(self, sample: ResourceSample) -> None:
        if self.isVisible():  # hidden, it is filled when shown (the monitor keeps the history)
            self.fill(sample)

    def fill(self, sample: ResourceSample) -> None:
        history = list(self.monitor.history) or [sample]
        self.values["pressure"].setText(pressure_text(sample))
        self.lines["pressure"].set_values([s.pressure for s in history])
        for key in RESOURCE_NAMES:
            self.values[key].setText(io_text(sample, key))
            self.lines[key].set_values([io_fraction(s, key) for s in history])
        self.note.setText(
            "Jobs of normal priority wait while pressure is high or a resource they use is "
            "near its capacity (Settings sets capacities)."
            if sample.live
            else "Attached to a worker: live figures are the worker's; these are its settings."
        )


class ResourcesButton(QToolButton):
    """The status bar's entry to the resources view; its text is the busiest figure."""

    def __init__(self, monitor: ResourceMonitor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "resourcesButton", "Resources")
        self.setAutoRaise(True)
        self.setText("Resources")
        self.setToolTip("Pressure and disk/network use against capacity (click for the chart)")
        self.monitor = monitor
        self.view: ResourcesView | None = None
        self.clicked.connect(self.open_view)
        monitor.sampled.connect(self._sampled)

    def _sampled(self, sample: ResourceSample) -> None:
        busiest = max((io_fraction(sample, r) for r in RESOURCE_NAMES), default=0.0)
        text = f"IO {busiest:.0%}" if sample.live else "Resources"
        if sample.live and sample.pressure > 0:
            text += f" · pressure {sample.pressure:.0%}"
        if self.text() != text:
            self.setText(text)

    def open_view(self) -> None:
        if self.view is None:
            self.view = ResourcesView(self.monitor, self)
        view = self.view
        if self.monitor.last is not None:
            view.fill(self.monitor.last)
        view.adjustSize()
        below = self.mapToGlobal(self.rect().topLeft())
        view.move(below.x() + self.width() - view.width(), below.y() - view.height() - 4)
        view.show()
