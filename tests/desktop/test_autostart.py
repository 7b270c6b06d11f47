"""ux A-09: "Start on login (minimized)" writes an XDG autostart entry and removes it;
the checkbox shows what is on disk across restarts."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox

from desktop import autostart
from desktop.dialogs.settings import SettingsDialog
from tests.desktop.conftest import Harness


def open_settings(gui: Harness) -> SettingsDialog:
    gui.window.open_settings()
    gui.wait(lambda: gui.window.settings_dialog is not None and gui.window.settings_dialog.isVisible())
    dialog = gui.window.settings_dialog
    assert dialog is not None
    return dialog


def save(gui: Harness, dialog: SettingsDialog) -> None:
    dialog.accept()
    gui.wait(lambda: gui.window.settings_dialog is None)


def exec_args(entry: Path) -> list[str]:
    line = next(x for x in entry.read_text().splitlines() if x.startswith("Exec="))
    return shlex.split(line.removeprefix("Exec=").replace("\\\\", "\\"))


def test_A09_start_on_login_writes_then_removes_the_autostart_entry(
    make_app: Callable[..., Harness], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    entry = config / "autostart" / "taskdeck.desktop"
    gui = make_app()
    dialog = open_settings(gui)
    box = dialog.findChild(QCheckBox, "settingsStartOnLogin")
    assert box is not None and box.text() == "Start on login (minimized)" and not box.isChecked()
    box.setChecked(True)
    save(gui, dialog)
    assert entry.is_file()
    text = entry.read_text()
    assert "[Desktop Entry]" in text and "Type=Application" in text
    args = exec_args(entry)
    assert args[:4] == [sys.executable, "-m", "desktop", "--minimized"]
    assert args[4:] == ["--profile", str(gui.profile_dir)]
    gui.run(gui.app.shutdown())
    # a restart shows it checked, from the file on disk
    again = make_app()
    dialog = open_settings(again)
    box = dialog.findChild(QCheckBox, "settingsStartOnLogin")
    assert box is not None and box.isChecked()
    box.setChecked(False)
    save(again, dialog)
    assert not entry.exists()
    dialog = open_settings(again)
    box = dialog.findChild(QCheckBox, "settingsStartOnLogin")
    assert box is not None and not box.isChecked()
    dialog.reject()
    again.wait(lambda: again.window.settings_dialog is None)


def test_A09_exec_line_quotes_what_needs_quoting(tmp_path: Path) -> None:
    weird = tmp_path / 'my "jobs" 100%'
    text = autostart.entry_text(["/usr/bin/python3", "-m", "desktop", "--minimized", "--profile", str(weird)])
    line = next(x for x in text.splitlines() if x.startswith("Exec="))
    assert line == (
        'Exec=/usr/bin/python3 -m desktop --minimized --profile "'
        + str(tmp_path).replace("\\", "\\\\\\\\")
        + '/my \\\\"jobs\\\\" 100%%"'
    )
    assert autostart.entry_path({"XDG_CONFIG_HOME": "/x/cfg"}) == Path("/x/cfg/autostart/taskdeck.desktop")
    assert autostart.entry_path({"XDG_CONFIG_HOME": "relative"}) == (
        Path.home() / ".config/autostart/taskdeck.desktop"
    )


def test_A09_an_unwritable_config_dir_is_told_and_the_box_stays_off(
    make_app: Callable[..., Harness], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not a dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))  # autostart/ cannot be made in a file
    gui = make_app()
    dialog = open_settings(gui)
    box = dialog.findChild(QCheckBox, "settingsStartOnLogin")
    assert box is not None
    box.setChecked(True)
    save(gui, dialog)
    assert gui.window.toast.text().startswith("Could not change start on login:")
    dialog = open_settings(gui)
    box = dialog.findChild(QCheckBox, "settingsStartOnLogin")
    assert box is not None and not box.isChecked()
    dialog.reject()
    gui.wait(lambda: gui.window.settings_dialog is None)
