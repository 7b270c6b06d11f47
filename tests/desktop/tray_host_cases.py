"""ux A-03 with a tray host (trayer) on the display. Qt keeps believing in a tray once it
saw one, so these run in their own pytest process (tests/desktop/test_tray.py starts it);
the file name keeps the main run from collecting them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication, QCheckBox, QMessageBox

from desktop.tray import NOTICE, tray_available
from tests.desktop.conftest import Harness
from tests.desktop.system_parts import tray_host, wait_for
from tests.desktop.test_autostart import open_settings, save


@pytest.fixture(autouse=True, scope="module")
def trayer() -> Iterator[None]:
    with tray_host():
        yield


def test_A03_close_hides_into_the_tray_says_so_once_and_the_menu_works(
    qapp: QApplication, gui: Harness
) -> None:
    gui.wait(tray_available)
    tray = gui.app.integration.tray
    gui.wait(tray.is_shown)  # (re-checked every 2 s if the host came late)
    dialog = open_settings(gui)
    box = dialog.findChild(QCheckBox, "settingsCloseToTray")
    assert box is not None and box.isEnabled() and not box.isChecked()
    box.setChecked(True)
    save(gui, dialog)
    a = gui.submit("test.gate", {"gate": "a3", "total": 1000, "step": 1, "tick": 0.05})
    b = gui.submit("test.gate", {"gate": "a3", "total": 1000, "step": 1, "tick": 0.05})
    gui.wait_text(a, "Running")
    gui.wait_text(b, "Running")
    gui.wait(lambda: re.fullmatch(r"2 running · \d+ %", tray.icon.toolTip()))
    assert [act.text() for act in tray.menu.actions()] == ["Show Taskdeck", "Pause all", "", "Quit"]
    w = gui.window
    w.close()
    gui.wait(lambda: not w.isVisible())
    assert tray.notices == [NOTICE]
    assert not gui.app.bridge.closed
    assert not [x for x in QApplication.topLevelWidgets() if isinstance(x, QMessageBox) and x.isVisible()]
    tray.action_show.trigger()
    gui.wait(w.isVisible)
    w.close()
    gui.wait(lambda: not w.isVisible())
    assert tray.notices == [NOTICE]  # told once
    tray.action_pause.trigger()
    gui.wait(lambda: tray.action_pause.text() == "Resume all")
    tray.action_pause.trigger()
    gui.wait(lambda: tray.action_pause.text() == "Pause all")
    tray.action_quit.trigger()
    box_ = gui.message_box("confirmQuit")
    assert box_.text() == "2 jobs are running."
    gui.click(box_, "accept")
    gui.wait(lambda: gui.app.bridge.closed)
    wait_for(lambda: not tray.icon.isVisible(), what="tray icon hidden at quit")


def test_A07_hidden_in_the_tray_without_a_bus_a_failure_is_a_tray_message(
    gui: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    tray = gui.app.integration.tray
    gui.wait(tray.is_shown)
    gui.window.settings.setValue("closeToTray", True)
    gui.window.close()
    gui.wait(lambda: not gui.window.isVisible())
    task = gui.submit("test.fail", {}, label="hidden.jpg")
    notifier = gui.app.integration.notifier
    gui.wait(lambda: notifier.log)
    assert [(channel, note.summary) for channel, note in notifier.log] == [("tray", "hidden.jpg failed")]
    assert gui.engine.get(task).state.value == "failed"  # type: ignore[union-attr]


def test_A03_minimized_start_with_a_tray_waits_in_the_tray(make_app) -> None:  # type: ignore[no-untyped-def]
    gui = make_app(minimized=True)
    tray = gui.app.integration.tray
    assert tray.is_shown() and not gui.window.isVisible()
    tray.action_show.trigger()
    gui.wait(lambda: gui.window.isVisible() and not gui.window.isMinimized())
