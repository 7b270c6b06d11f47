"""`taskdeck`: the window without a command, the CLI with one (SPEC §7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from desktop import launcher
from desktop.launcher import wants_window


def test_the_taskdeck_console_script_is_the_launcher() -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="taskdeck")
    assert script.value == "desktop.launcher:main"
    assert script.load() is launcher.main
    (window,) = entry_points(group="console_scripts", name="taskdeck-window")
    assert window.value == "desktop.app:main"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--minimized"],
        ["--db", "/tmp/x.db"],
        ["--db=/tmp/x.db", "photo.jpg"],
        ["--profile", "/tmp/p", "a.jpg", "b.jpg"],
        ["-v"],
    ],
)
def test_without_a_command_it_opens_the_window(argv: list[str]) -> None:
    assert wants_window(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["ls"],
        ["list"],  # no such command, and no such file: the CLI says so
        ["--version"],
        ["--db", "/tmp/x.db", "submit", "demo.sleep"],
        ["--json", "history"],
        ["--help"],
        ["-h"],
        ["worker"],
        ["--db", "ls", "ls"],  # a database named "ls", then the command
    ],
)
def test_with_a_command_it_is_the_cli(argv: list[str]) -> None:
    assert not wants_window(argv)


def test_the_console_script_runs_a_cli_command(tmp_path: Path) -> None:
    """Through the launcher, `taskdeck --db X ls` is the CLI and never touches Qt."""
    db = tmp_path / "tasks.db"
    code = (
        "import sys; from desktop.launcher import main; rc = main(sys.argv[1:]); "
        "assert 'PySide6.QtWidgets' not in sys.modules; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--db", str(db), "ls"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
