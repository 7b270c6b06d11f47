"""The status bar's resource parts: overall progress by bytes, the bandwidth-limit toggle
(ux A-14), the deferral notice (ux Q-15) and the monitor that samples resources once a
second for them and the resources view."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QMenu, QToolButton, QWidget

from core import BandwidthStatus, TaskRecord, TaskState
from desktop.bridge import Bridge, ResourceSample
from desktop.models.queue import QueueModel
from desktop.views.widgets import name
from desktop.vocabulary import deferral, format_limit

logger = logging.getLogger(__name__)

SAMPLE_MS = 1000
HISTORY = 60  # samples the sparklines show (a minute)
REASONS_CHECKED = 200  # pending rows whose wait reason is re-read each sample (the top of the queue)
DEFAULT_LIMIT = 500_000.0  # bytes/s the toggle limits to before the user picked a figure
PRESET_LIMITS = (100_000.0, 200_000.0, 500_000.0, 1_000_000.0, 5_000_000.0, 20_000_000.0)
_BYTES_FROM = 100_000  # progress totals below this are item counts, not bytes (vocabulary)


def overall_progress(records: Iterable[TaskRecord]) -> float | None:
    """The running top-level jobs' progress, weighted by bytes: a job that reports bytes
    weighs its size; one that reports only a fraction weighs the mean size of the others
    (or 1 when none reports bytes). None when nothing running reports progress."""
    sized: list[tuple[float, float]] = []  # (bytes total, fraction)
    unsized: list[float] = []
    for rec in records:
        if rec.state != TaskState.RUNNING or rec.parent_id is not None:
            continue
        if rec.bytes_total and rec.bytes_total >= _BYTES_FROM and rec.bytes_done is not None:
            sized.append((float(rec.bytes_total), min(1.0, rec.bytes_done / rec.bytes_total)))
        elif rec.progress is not None:
            unsized.append(rec.progress)
    if not sized and not unsized:
        return None
    weight = sum(t for t, _ in sized) / len(sized) if sized else 1.0
    total = sum(t for t, _ in sized) + weight * len(unsized)
    done = sum(t * f for t, f in sized) + weight * sum(unsized)
    return done / total if total else 0.0


def total_speed(records: Iterable[TaskRecord]) -> float:
    """Bytes/s of the running top-level jobs that report bytes."""
    return sum(
        rec.speed or 0.0
        for rec in records
        if rec.state == TaskState.RUNNING
        and rec.parent_id is None
        and rec.bytes_total
        and rec.bytes_total >= _BYTES_FROM
    )


def _zone(status: BandwidthStatus) -> tzinfo | None:
    if status.tz:
        try:
            return ZoneInfo(status.tz)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


def schedule_change(status: BandwidthStatus, now: datetime) -> datetime | None:
    """When the weekly schedule next changes the limit (a window opens or closes)."""
    zone = _zone(status)
    local = now.astimezone(zone) if zone is not None else now.astimezone()
    edges = [e for w in status.schedule for e in w.edges_after(local) if e > local]
    return min(edges) if edges else None


def limit_mode(status: BandwidthStatus, now: datetime) -> tuple[str, str, bool]:
    """(text, tooltip, limited) for the toggle, in the words of ux A-14."""
    limit = status.limit
    if status.override_until is not None:
        until = f"{status.override_until.astimezone():%H:%M}"
        then = "the schedule applies" if status.schedule else "the usual limit applies"
        if limit is None:
            return (
                f"Unlimited — override until {until}",
                f"Bandwidth: no limit until {until} (a temporary override); then {then} again. "
                "Click to end the override now.",
                False,
            )
        return (
            f"Limited {format_limit(limit)} — override until {until}",
            f"Bandwidth: network jobs together move at most {format_limit(limit)} until {until} "
            f"(a temporary override); then {then} again. Click to end the override now.",
            True,
        )
    if status.source == "schedule":
        change = schedule_change(status, now)
        until = f" until {change:%H:%M}" if change is not None else ""
        if limit is None:
            return (
                f"Unlimited (scheduled{until})",
                f"Bandwidth: the weekly schedule sets no limit{until}. Click to limit it to the "
                "chosen figure until then.",
                False,
            )
        return (
            f"Limit {format_limit(limit)} (scheduled{until})",
            f"Bandwidth: the weekly schedule limits network jobs to {format_limit(limit)}{until}. "
            "Click to lift the limit until then.",
            True,
        )
    if limit is None:
        return (
            "Unlimited",
            "Bandwidth: unlimited. Click to limit network jobs (the arrow picks the figure).",
            False,
        )
    return (
        f"Limited {format_limit(limit)}",
        f"Bandwidth: limited — network jobs together move at most {format_limit(limit)}. "
        "Click to remove the limit.",
        True,
    )


def gauge_icon(limited: bool, color: QColor, size: int = 16) -> QIcon:
    """A speedometer: the needle low and a bar under it when limited, flat out when not."""
    pix = QPixmap(size * 2, size * 2)  # drawn at 2x, for high-DPI screens too
    pix.setDevicePixelRatio(2.0)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    try:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(color, 1.6)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        arc = QRectF(2, 3, size - 4, size - 4)
        p.drawArc(arc, 0, 180 * 16)
        centre = arc.center()
        angle = math.radians(145 if limited else 25)
        r = arc.width() / 2 - 1.5
        p.drawLine(centre, QPointF(centre.x() + r * math.cos(angle), centre.y() - r * math.sin(angle)))
        if limited:
            p.drawLine(QPointF(3, size - 2.5), QPointF(size - 3, size - 2.5))
    finally:
        p.end()
    return QIcon(pix)


class BandwidthToggle(QToolButton):
    """The status bar's bandwidth-limit switch. Click: limit on or off (a scheduled limit
    is lifted, or imposed, until the schedule's next change; an override is ended); the
    arrow's menu picks the figure. The mode shows in the text, the `limited` property (the
    themes give it the accent colour) and the tooltip."""

    def __init__(self, bridge: Bridge, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "bandwidthToggle", "Bandwidth limit")
        self.bridge = bridge
        self.settings = settings
        self.status: BandwidthStatus | None = None
        self.setCheckable(True)
        self.setAutoRaise(True)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        menu = QMenu(self)
        menu.setObjectName("bandwidthMenu")
        for bps in PRESET_LIMITS:
            act = QAction(f"Limit to {format_limit(bps)}", menu)
            act.setObjectName(f"action_limit_{int(bps)}")
            act.triggered.connect(lambda _=False, b=bps: self.choose(b))
            menu.addAction(act)
        menu.addSeparator()
        off = QAction("No limit", menu)
        off.setObjectName("action_limit_none")
        off.triggered.connect(lambda: self.choose(None))
        menu.addAction(off)
        self.setMenu(menu)
        self.clicked.connect(self.toggle_limit)
        self.show_status(None)

    def chosen_limit(self) -> float:
        value = self.settings.value("bandwidthLimit")
        try:
            bps = float(str(value)) if value is not None else DEFAULT_LIMIT
        except ValueError:
            bps = DEFAULT_LIMIT
        return bps if bps > 0 else DEFAULT_LIMIT

    def show_status(self, status: BandwidthStatus | None, now: datetime | None = None) -> None:
        self.status = status
        if status is None:
            text, tip, limited = "Unlimited", "Bandwidth: unlimited.", False
        else:
            text, tip, limited = limit_mode(status, now or datetime.now().astimezone())
        # only what changed: this runs every second (PySide6 6.12.0 on Python 3.11 even
        # dropped a reference to None per call of a void method; pyproject.toml excludes it)
        if self.text() != text:
            self.setText(text)
        if self.toolTip() != tip:
            self.setToolTip(tip)
            self.setAccessibleDescription(tip)
        if self.isChecked() != limited:
            self.setChecked(limited)
        if self.property("limited") is not limited:
            self.setProperty("limited", limited)
            self.style().unpolish(self)
            self.style().polish(self)
            self._update_icon()

    def _update_icon(self) -> None:
        limited = bool(self.property("limited"))
        self.setIcon(gauge_icon(limited, self.palette().color(QPalette.ColorRole.ButtonText)))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._update_icon()  # a theme switch: the needle takes the new text colour

    def toggle_limit(self) -> None:
        status = self.status
        now = datetime.now().astimezone()
        if status is None:
            self.bridge.spawn(self.bridge.set_bandwidth_limit(self.chosen_limit()), "Bandwidth limit")
        elif status.override_until is not None:
            # back to the stored base limit (and the schedule): the override ends
            self.bridge.spawn(self.bridge.set_bandwidth_limit(status.base), "Bandwidth limit")
        elif status.source == "schedule":
            # until the schedule next changes (an hour if it never does, so the stored base
            # limit is never replaced by a click meant as temporary)
            until = schedule_change(status, now) or now + timedelta(hours=1)
            value = None if status.limit is not None else self.chosen_limit()
            self.bridge.spawn(self.bridge.set_bandwidth_limit(value, until=until), "Bandwidth limit")
        elif status.limit is not None:
            self.settings.setValue("bandwidthLimit", status.limit)
            self.bridge.spawn(self.bridge.set_bandwidth_limit(None), "Bandwidth limit")
        else:
            self.bridge.spawn(self.bridge.set_bandwidth_limit(self.chosen_limit()), "Bandwidth limit")

    def choose(self, bps: float | None) -> None:
        if bps is not None:
            self.settings.setValue("bandwidthLimit", bps)
        self.bridge.spawn(self.bridge.set_bandwidth_limit(bps), "Bandwidth limit")


class ResourceMonitor(QObject):
    """Samples resources once a second: the bandwidth mode, pressure and IO for the status
    bar and the resources view, and the wait reasons of the top pending rows (a gate's
    refusal is no event, so nothing else would tell the rows).

    Signals:
        sampled(ResourceSample): a new reading; `history` holds the last minute of them.
    """

    sampled = Signal(object)

    def __init__(self, bridge: Bridge, model: QueueModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.model = model
        self.history: deque[ResourceSample] = deque(maxlen=HISTORY)
        self.last: ResourceSample | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(SAMPLE_MS)
        self._timer.timeout.connect(self.sample)
        self._timer.start()
        # a bound slot, not a lambda: Qt drops the connection when the monitor is deleted
        bridge.status_changed.connect(self._status_changed)

    def stop(self) -> None:
        self._timer.stop()

    def _status_changed(self, _status: object) -> None:
        self.sample()  # a limit changed: show it now, not at the next tick

    def sample(self) -> None:
        if self.bridge.closed:
            return
        try:
            reading = self.bridge.resource_sample()
            changed = self.bridge.refresh_reasons(self.model.waiting_reasons(REASONS_CHECKED))
        except Exception:  # a closing engine: the next tick (if any) tries again
            logger.debug("resource sample failed", exc_info=True)
            return
        self.bridge.apply_records(changed)
        self.history.append(reading)
        self.last = reading
        self.sampled.emit(reading)


class DeferralLabel(QLabel):
    """ "3 deferred — disk busy": how many queued jobs a resource gate holds back, from the
    rows' wait reasons; hidden when none is."""

    def __init__(self, model: QueueModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "statusDeferred", "Deferred jobs")
        self.model = model
        self.hide()

    def refresh(self) -> None:
        why: dict[str, int] = {}
        for reason in self.model.waiting_reasons(REASONS_CHECKED).values():
            what = deferral(reason)
            if what is not None:
                why[what] = why.get(what, 0) + 1
        n = sum(why.values())
        if not n:
            if not self.isHidden():
                self.hide()
                self.setText("")
            return
        main = max(why, key=lambda k: why[k])
        text = f"{n} deferred — {main}"
        details = ", ".join(f"{c} by {w}" for w, c in sorted(why.items(), key=lambda kv: -kv[1]))
        tip = (
            f"{n} queued job{'s' if n != 1 else ''} wait{'s' if n == 1 else ''} for resources ({details}); "
            "they start by themselves when there is room. Hover a row for its reason."
        )
        if self.text() != text or self.toolTip() != tip:
            self.setText(text)
            self.setToolTip(tip)
            self.setAccessibleDescription(tip)
        if self.isHidden():
            self.show()
