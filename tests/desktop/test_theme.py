"""ux A-11: light, dark and system themes; "system" follows the platform's colour scheme
live, a chosen theme overrides it and persists, and status colours stay readable
(WCAG contrast >= 4.5:1 against the backgrounds they are drawn on, in both themes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QLineEdit,
    QListWidget,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop import theme
from desktop.dialogs.settings import SettingsDialog
from tests.desktop.conftest import Harness

MIN_CONTRAST = 4.5


def luminance(c: QColor) -> float:
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def contrast(a: QColor, b: QColor) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def qss_rules(name: str) -> dict[str, dict[str, str]]:
    """selector -> declarations of a theme's QSS (each selector of a group on its own)."""
    text = (theme.resources_dir() / "themes" / f"{name}.qss").read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", text):
        decls = {k.strip(): v.strip() for k, _, v in (d.partition(":") for d in body.split(";")) if v.strip()}
        for sel in selectors.split(","):
            rules.setdefault(sel.strip(), {}).update(decls)
    return rules


def pairs(name: str) -> Iterator[tuple[str, QColor, QColor]]:
    """(what, foreground, background) for every status colour where it is drawn."""
    colors = theme._DARK if name == "dark" else theme._LIGHT
    pal = theme._palette(name)
    qss = qss_rules(name)
    base = pal.color(QPalette.ColorRole.Base)
    rows = qss["QTreeView#queueView"]
    alternate = QColor(rows["alternate-background-color"])
    assert QColor(rows["background"]) == base
    for state in ("running", "failed", "paused", "completed", "muted"):
        fg = getattr(colors, state)
        yield f"{state} row", fg, base
        yield f"{state} alternate row", fg, alternate
    disabled = pal.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
    yield "finished (greyed) row", disabled, base  # greyed rows still state their outcome
    yield "finished (greyed) alternate row", disabled, alternate
    yield "progress text on the bar", QColor("#ffffff"), colors.bar
    yield "progress text off the bar", pal.color(QPalette.ColorRole.Text), base
    bar = qss["QProgressBar"]
    yield "status bar progress text", QColor(bar["color"]), QColor(bar["background"])
    chunk = qss["QProgressBar::chunk"]["background"]
    yield "status bar progress text on its chunk", QColor(bar["color"]), QColor(chunk)
    status_bg = QColor(qss["QStatusBar#statusBar"]["background"])
    for label in ("QLabel#statusMode", "QLabel#statusDeferred", "QStatusBar#statusBar QLabel"):
        yield label, QColor(qss[label]["color"]), status_bg
    limited = qss['QToolButton#bandwidthToggle[limited="true"]']
    yield "bandwidth toggle, limited", QColor(limited["color"]), QColor(limited["background"])
    error = QColor(qss['QLabel[role="error"]']["color"])
    yield "error text in details", error, QColor(qss["QWidget#detailsPanel"]["background"])
    yield "error text on the window", error, pal.color(QPalette.ColorRole.Window)
    destructive = QColor(qss['QPushButton[destructive="true"]']["color"])
    yield "a destructive button's text", destructive, pal.color(QPalette.ColorRole.Button)
    yield (
        "hint text in a dialog",
        QColor(qss['QLabel[role="hint"]']["color"]),
        pal.color(QPalette.ColorRole.Window),
    )
    for kind in ("success", "info", "warning"):
        banner = qss[f'QFrame[kind="{kind}"]']
        yield f"{kind} banner", QColor(banner["color"]), QColor(banner["background"])
    for selected in ("QListView#sidebar::item:selected", "QToolBar#mainToolbar QToolButton:checked"):
        yield selected, QColor(qss[selected]["color"]), QColor(qss[selected]["background"])
    yield "selected row", QColor(rows["selection-color"]), QColor(rows["selection-background-color"])


@pytest.mark.parametrize("name", ["light", "dark"])
def test_A11_status_colours_are_readable_in_both_themes(name: str) -> None:
    low = [
        f"{what}: {fg.name()} on {bg.name()} is {contrast(fg, bg):.2f}:1"
        for what, fg, bg in pairs(name)
        if contrast(fg, bg) < MIN_CONTRAST
    ]
    assert not low, f"{name} theme, below {MIN_CONTRAST}:1 — " + "; ".join(low)


@pytest.mark.parametrize("name", ["light", "dark"])
def test_A11_an_unchecked_box_and_a_radio_button_show_their_edge_in_both_themes(
    qapp: QApplication, name: str
) -> None:
    """WCAG asks 3:1 for the boundary of a control. Fusion's own edge is a shade darker
    than the window: on the dark base an unchecked box was not visible at all."""
    theme.apply_theme(qapp, name)
    try:
        pal = theme._palette(name)
        backgrounds = {
            "base": pal.color(QPalette.ColorRole.Base),
            "window": pal.color(QPalette.ColorRole.Window),
            "alternate row": QColor(qss_rules(name)["QTreeView#queueView"]["alternate-background-color"]),
        }
        edge = theme.INDICATOR_EDGE[name]
        low = {k: round(contrast(edge, bg), 2) for k, bg in backgrounds.items() if contrast(edge, bg) < 3}
        assert not low, f"{name}: the indicator edge {edge.name()} is below 3:1 on {low}"
        for widget in (QCheckBox("Enabled"), QRadioButton("Weekly")):
            widget.resize(widget.sizeHint())
            image = widget.grab().toImage()
            bg = image.pixelColor(image.width() - 1, 0)  # a corner: the window behind
            row = image.height() // 2
            # Along the middle row, from the left: the indicator's edge is the most
            # contrasting pixel before its inside.
            strongest = max(contrast(image.pixelColor(x, row), bg) for x in range(min(8, image.width())))
            assert strongest >= 3, f"{name}: {type(widget).__name__} edge at {strongest:.2f}:1 on {bg.name()}"
    finally:
        theme.apply_theme(qapp, "system")


@pytest.mark.parametrize("name", ["light", "dark"])
def test_A11_text_fields_spin_boxes_and_lists_show_their_edge_in_both_themes(
    qapp: QApplication, name: str
) -> None:
    """A form on the dark theme showed its fields as faint patches: Fusion's field edge is
    a shade darker than the window, 1.2:1 there. Each field sits in a padded container
    so the window colour is behind it; its edge must stand out at 3:1 or more."""
    theme.apply_theme(qapp, name)
    try:
        pal = theme._palette(name)
        edge = theme.FIELD_EDGE[name]
        for role in (QPalette.ColorRole.Base, QPalette.ColorRole.Window):
            assert contrast(edge, pal.color(role)) >= 3, (name, role, edge.name())
        combo = QComboBox()
        combo.addItems(["JPEG", "PNG"])
        listed = QListWidget()
        listed.addItems(["a.jpg"])
        listed.setFixedHeight(40)
        for field in (QLineEdit("holiday.jpg"), QSpinBox(), combo, listed):
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.setContentsMargins(6, 6, 6, 6)
            lay.addWidget(field)
            box.resize(220, field.sizeHint().height() + 12)
            image = box.grab().toImage()
            bg = image.pixelColor(1, 1)
            row = image.height() // 2
            strongest = max(contrast(image.pixelColor(x, row), bg) for x in range(2, 10))
            assert strongest >= 3, f"{name}: {type(field).__name__} edge at {strongest:.2f}:1 on {bg.name()}"
    finally:
        theme.apply_theme(qapp, "system")


def test_contrast_is_computed_as_wcag_defines_it() -> None:
    assert contrast(QColor("#000000"), QColor("#ffffff")) == pytest.approx(21.0)
    assert contrast(QColor("#777777"), QColor("#ffffff")) == pytest.approx(4.48, abs=0.01)


@pytest.fixture
def platform_scheme(qapp: QApplication) -> Iterator[Any]:
    """Switches the platform's colour scheme the way a desktop does: Qt's signal. (Xvfb has
    no platform theme, so QStyleHints.setColorScheme is a no-op there.)"""
    hints = qapp.styleHints()

    def switch(scheme: Qt.ColorScheme) -> None:
        hints.colorSchemeChanged.emit(scheme)

    yield switch
    switch(Qt.ColorScheme.Unknown)  # back to what the platform palette says, for later tests
    theme.apply_theme(qapp, "system")


def window_is_dark(h: Harness) -> bool:
    view = h.window.queue_pane.view
    image = view.viewport().grab().toImage()
    return image.pixelColor(image.width() // 2, image.height() - 3).lightness() < 128


def test_A11_system_theme_follows_the_platform_live_and_a_choice_overrides_it(
    make_app: Any, platform_scheme: Any, profile_dir: Path
) -> None:
    h: Harness = make_app()
    app = QApplication.instance()
    assert theme.choice() == "system" and app.property("taskdeckTheme") == "light"
    assert not window_is_dark(h)
    platform_scheme(Qt.ColorScheme.Dark)
    h.wait(lambda: app.property("taskdeckTheme") == "dark")
    h.wait(lambda: window_is_dark(h))  # repainted, no restart
    platform_scheme(Qt.ColorScheme.Light)
    h.wait(lambda: not window_is_dark(h))
    platform_scheme(Qt.ColorScheme.Dark)
    h.wait(lambda: window_is_dark(h))

    w = h.window
    w.open_settings()
    h.wait(lambda: w.settings_dialog is not None and w.settings_dialog.isVisible())
    d: SettingsDialog = w.settings_dialog
    d.theme.setCurrentIndex(d.theme.findData("light"))
    d.accept()
    h.wait(lambda: app.property("taskdeckTheme") == "light" and not window_is_dark(h))
    assert w.settings.value("theme") == "light" and theme.choice() == "light"
    platform_scheme(Qt.ColorScheme.Dark)  # the override holds while the platform is dark
    assert app.property("taskdeckTheme") == "light"

    h.close()  # a new session on the same profile keeps the choice
    h2: Harness = make_app(directory=profile_dir)
    assert theme.choice() == "light" and app.property("taskdeckTheme") == "light"
    assert not window_is_dark(h2)
