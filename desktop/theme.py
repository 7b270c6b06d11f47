"""Themes: the QSS files in resources/themes and the few colours models need for data
(state text, greyed rows). No stylesheet strings live in widgets."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QProxyStyle,
    QStyle,
    QStyleOption,
    QStyleOptionComboBox,
    QStyleOptionComplex,
    QStyleOptionFrame,
    QStyleOptionSpinBox,
    QWidget,
)

THEMES = ("system", "light", "dark")


def resources_dir() -> Path:
    """resources/ beside the packages (a source checkout or an editable install), else
    the copy an installed bundle keeps in share/taskdeck."""
    here = Path(__file__).resolve().parent.parent / "resources"
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "taskdeck" / "resources"


@dataclass(frozen=True, slots=True)
class StateColors:
    running: QColor
    failed: QColor
    paused: QColor
    completed: QColor
    muted: QColor
    bar: QColor


_LIGHT = StateColors(
    running=QColor("#1d5fbf"),
    failed=QColor("#b3261e"),
    paused=QColor("#8a5a00"),
    completed=QColor("#2b6b2f"),
    muted=QColor("#6b6f76"),
    bar=QColor("#2f6fc4"),
)
_DARK = StateColors(
    running=QColor("#7fb0ff"),
    failed=QColor("#ff8a80"),
    paused=QColor("#f0c060"),
    completed=QColor("#8fd694"),
    muted=QColor("#9aa0a8"),
    bar=QColor("#3d6fb6"),
)

# The edge of check boxes and radio buttons. Fusion draws it a shade darker than the
# window colour: on the dark theme's near-black base that edge vanishes (and on white it
# is too faint), so an unchecked box could not be seen. These keep >= 3:1 (WCAG's
# figure for the boundary of a control) against every background a box is drawn on.
INDICATOR_EDGE = {"light": QColor("#80868f"), "dark": QColor("#8e949d")}
# The same for the edge of text fields, spin boxes, drop-down lists and framed lists: a
# form on the dark theme otherwise shows its fields as faint patches with no edge.
FIELD_EDGE = {"light": QColor("#848a93"), "dark": QColor("#767c86")}
FOCUS_EDGE = {"light": QColor("#1d5fbf"), "dark": QColor("#7fb0ff")}  # a framed list with the focus

_current = "light"
_choice = "system"  # what the user chose; "system" follows the platform live
_reported: Qt.ColorScheme | None = None  # the scheme colorSchemeChanged last reported
_platform_dark: bool | None = None  # the platform palette's lightness, read before we set ours


def system_is_dark() -> bool:
    """The platform's colour scheme: what colorSchemeChanged last said, else what the style
    hints say, else how dark the platform's own palette (before ours replaced it) is."""
    global _platform_dark
    hints = QGuiApplication.styleHints()
    scheme = _reported
    if scheme is None or scheme == Qt.ColorScheme.Unknown:
        scheme = hints.colorScheme() if hints is not None else Qt.ColorScheme.Unknown
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    if _platform_dark is None:
        _platform_dark = QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128
    return _platform_dark


def effective(theme: str) -> str:
    if theme == "system":
        return "dark" if system_is_dark() else "light"
    return theme if theme in ("light", "dark") else "light"


def apply_theme(app: QApplication, theme: str) -> str:
    """Apply a theme ("system", "light" or "dark"); returns the one applied. With "system"
    the window follows the platform's colour scheme live (QStyleHints.colorSchemeChanged)
    until another theme is chosen."""
    global _choice
    system_is_dark()  # reads the platform palette once, before ours replaces it
    _choice = theme if theme in THEMES else "system"
    _follow(app)
    return _apply(app, _choice)


def choice() -> str:
    return _choice


def _follow(app: QApplication) -> None:
    if app.property("taskdeckFollowsScheme"):
        return
    hints = app.styleHints()
    if hints is not None:
        hints.colorSchemeChanged.connect(scheme_changed)
        app.setProperty("taskdeckFollowsScheme", True)


def scheme_changed(scheme: Qt.ColorScheme) -> None:
    """The platform switched light/dark: repaint now if the user's choice is "system"."""
    global _reported
    _reported = scheme
    app = QApplication.instance()
    if _choice == "system" and isinstance(app, QApplication):
        _apply(app, "system")


P = QStyle.PrimitiveElement


class _Style(QProxyStyle):
    """Fusion, with the edges of controls drawn in the theme's INDICATOR_EDGE (check boxes,
    radio buttons) and FIELD_EDGE (fields, spin boxes, drop-downs, framed lists). A
    focused field keeps Fusion's own focus edge."""

    _BOXES = (P.PE_IndicatorCheckBox, P.PE_IndicatorItemViewItemCheck)

    def __init__(self) -> None:
        super().__init__("Fusion")

    def drawPrimitive(
        self,
        element: QStyle.PrimitiveElement,
        option: QStyleOption,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        super().drawPrimitive(element, option, painter, widget)
        if element == P.PE_IndicatorRadioButton:
            _edge(painter, option, INDICATOR_EDGE, round_=True)
        elif element in self._BOXES:
            _edge(painter, option, INDICATOR_EDGE)
        elif element == P.PE_Frame and isinstance(option, QStyleOptionFrame) and option.lineWidth > 0:
            # a framed list or text box: Fusion shows no focus on it, so the edge does
            focused = bool(option.state & QStyle.StateFlag.State_HasFocus)
            _edge(painter, option, FOCUS_EDGE if focused else FIELD_EDGE)
        elif element == P.PE_PanelLineEdit and _framed(option):
            _edge(painter, option, FIELD_EDGE)

    def drawComplexControl(
        self,
        control: QStyle.ComplexControl,
        option: QStyleOptionComplex,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        super().drawComplexControl(control, option, painter, widget)
        if _framed(option):
            _edge(painter, option, FIELD_EDGE)


def _framed(option: QStyleOption) -> bool:
    """A field with a frame and without the focus (Fusion draws the focus edge)."""
    if option.state & QStyle.StateFlag.State_HasFocus:
        return False
    if isinstance(option, QStyleOptionFrame):
        return option.lineWidth > 0
    return isinstance(option, (QStyleOptionSpinBox, QStyleOptionComboBox)) and bool(option.frame)


def _edge(painter: QPainter, option: QStyleOption, colors: dict[str, QColor], round_: bool = False) -> None:
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    edge = QColor(colors[_current])
    if not option.state & QStyle.StateFlag.State_Enabled:
        edge.setAlphaF(0.5)
    painter.setPen(QPen(edge, 1.0))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    r = QRectF(option.rect).adjusted(0.5, 0.5, -0.5, -0.5)
    if round_:
        painter.drawEllipse(r)
    else:
        painter.drawRoundedRect(r, 2.0, 2.0)
    painter.restore()


def _apply(app: QApplication, theme: str) -> str:
    global _current
    name = effective(theme)
    _current = name
    if not isinstance(app.style(), _Style):
        app.setStyle(_Style())
    app.setPalette(_palette(name))
    qss = resources_dir() / "themes" / f"{name}.qss"
    try:
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
    except OSError:
        app.setStyleSheet("")
    app.setProperty("taskdeckTheme", name)
    return name


def current() -> str:
    return _current


def colors() -> StateColors:
    return _DARK if _current == "dark" else _LIGHT


def _palette(name: str) -> QPalette:
    p = QPalette()
    if name == "dark":
        base, window, text, mid = "#1e2126", "#262a30", "#e6e8eb", "#3a3f47"
        highlight, hl_text, disabled = "#3d6fb6", "#ffffff", "#8e949d"
    else:
        base, window, text, mid = "#ffffff", "#f3f4f6", "#1f2328", "#d0d4da"
        highlight, hl_text, disabled = "#cfe0fa", "#102040", "#6a7079"
    R = QPalette.ColorRole
    for role, value in (
        (R.Window, window),
        (R.Base, base),
        (R.AlternateBase, window),
        (R.Text, text),
        (R.WindowText, text),
        (R.ButtonText, text),
        (R.Button, window),
        (R.Highlight, highlight),
        (R.HighlightedText, hl_text),
        (R.ToolTipBase, base),
        (R.ToolTipText, text),
        (R.PlaceholderText, disabled),
        (R.Mid, mid),
        (R.Midlight, mid),
        (R.Light, base),
        (R.Dark, mid),
    ):
        p.setColor(role, QColor(value))
    for role in (R.Text, R.WindowText, R.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled))
    p.setColor(QPalette.ColorGroup.Inactive, R.Highlight, QColor(highlight))
    p.setColor(QPalette.ColorGroup.Inactive, R.HighlightedText, QColor(hl_text))
    return p


def env_theme() -> str | None:
    """TASKDECK_THEME overrides the stored choice (screenshots use it)."""
    value = os.environ.get("TASKDECK_THEME")
    return value if value in THEMES else None
