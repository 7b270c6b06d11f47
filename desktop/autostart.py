"""Start on login (ux A-09): an XDG autostart entry,
$XDG_CONFIG_HOME/autostart/taskdeck.desktop, that opens the window minimized."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

FILE_NAME = "taskdeck.desktop"
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def autostart_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or ""
    config = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return config / "autostart"


def entry_path(env: Mapping[str, str] | None = None) -> Path:
    return autostart_dir(env) / FILE_NAME


def launch_command(profile: Path | None = None) -> list[str]:
    """How the login session starts us: this interpreter, minimized, same profile."""
    cmd = [sys.executable, "-m", "desktop", "--minimized"]
    if profile is not None:
        cmd += ["--profile", os.fspath(profile)]
    return cmd


def _quote(arg: str) -> str:
    """Quote one Exec argument as the Desktop Entry specification asks."""
    if arg and not (_RESERVED & set(arg)) and "%" not in arg:
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return '"' + escaped.replace("%", "%%") + '"'


def entry_text(command: Sequence[str]) -> str:
    # the Exec value is itself a string value, so its backslashes are escaped once more
    exec_line = " ".join(_quote(a) for a in command).replace("\\", "\\\\")
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Taskdeck\n"
        "Comment=Desktop job manager, started minimized at login\n"
        f"Exec={exec_line}\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def is_enabled(env: Mapping[str, str] | None = None) -> bool:
    return entry_path(env).is_file()


def enable(command: Sequence[str], env: Mapping[str, str] | None = None) -> Path:
    path = entry_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(entry_text(command), encoding="utf-8")
    tmp.replace(path)  # never a half-written entry
    return path


def disable(env: Mapping[str, str] | None = None) -> None:
    entry_path(env).unlink(missing_ok=True)
