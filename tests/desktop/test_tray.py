"""ux A-03/A-04: the tray icon with a tray host (in its own process, see
tray_host_cases.py) and without one (here: this process never sees a tray host)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QLabel, QTabWidget

from desktop.profile import Profile
from desktop.tray import NO_TRAY, tooltip_text, tray_available
from tests.desktop.conftest import Harness
from tests.desktop.system_parts import require
from tests.desktop.test_autostart import open_settings, save

ROOT = Path(__file__).resolve().parents[2]


def test_A03_with_a_tray_host_in_its_own_process() -> None:
    require("trayer", "trayer")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/desktop/tray_host_cases.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout, proc.stdout[-2000:]


def test_A03_tooltip_wording() -> None:
    assert tooltip_text(2, 45) == "2 running · 45 %"
    assert tooltip_text(0, None) == "0 running"


def test_A04_without_a_tray_x_asks_to_quit_and_minimized_shows_a_minimized_window(
    make_app: Callable[..., Harness], profile_dir: Path
) -> None:
    assert not tray_available(), "a tray host runs on this display: A-04 needs none"
    stored = Profile.create(profile_dir).settings()
    stored.setValue("closeToTray", True)  # chosen earlier on a desktop with a tray
    stored.sync()
    gui = make_app(minimized=True)
    w = gui.window
    gui.wait(lambda: w.isVisible() and w.isMinimized())
    assert not gui.app.integration.tray.is_shown()
    dialog = open_settings(gui)
    box = dialog.findChild(QCheckBox, "settingsCloseToTray")
    assert box is not None and not box.isEnabled() and not box.isChecked()
    assert box.toolTip() == NO_TRAY
    tabs = dialog.findChild(QTabWidget, "settingsTabs")
    assert tabs is not None
    tabs.setCurrentIndex(1)  # Window
    label = dialog.findChild(QLabel, "settingsNoTray")
    assert label is not None and label.text() == NO_TRAY
    gui.wait(label.isVisible)
    save(gui, dialog)
    assert str(w.settings.value("closeToTray")).lower() == "true"  # kept for a tray later
    w.showNormal()
    task = gui.submit("test.gate", {"gate": "a4"})
    gui.wait_text(task, "Running")
    w.close()
    box_ = gui.message_box("confirmQuit")  # asks instead of hiding into nothing
    assert w.isVisible()
    gui.click(box_, "cancel")
    gui.wait(lambda: not box_.isVisible() and not gui.app._quitting)
    assert w.isVisible() and not gui.app.bridge.closed


def test_A04_the_real_window_started_minimized_without_a_tray_is_minimized(tmp_path: Path) -> None:
    assert not tray_available()
    from tests.desktop.test_crash_window import READY, wait_log

    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "--profile", str(profile), "--minimized"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_log(profile, "started minimized (no system tray)")
        wait_log(profile, READY)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
