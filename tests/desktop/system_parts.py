"""System parts some window tests need (a tray host, a D-Bus daemon): started here, and
under CI=true a missing one fails the test instead of skipping it (`make system-deps-test`
installs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is missing (Debian package {package}; `make system-deps-test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


@contextmanager
def tray_host() -> Iterator[subprocess.Popen[bytes]]:
    """trayer (an XEmbed system tray) on the current display."""
    trayer = require("trayer", "trayer")
    proc = subprocess.Popen(
        [trayer, "--edge", "bottom", "--align", "right", "--widthtype", "request", "--height", "24",
         "--SetDockType", "true", "--transparent", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def private_session_bus() -> Iterator[str]:
    """A dbus-daemon of our own; its address (the caller puts it in the environment)."""
    daemon = require("dbus-daemon", "dbus-daemon")
    proc = subprocess.Popen(
        [daemon, "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("unix:"), f"dbus-daemon printed {address!r}"
        yield address
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # closes its pipes


@contextmanager
def fake_notification_service(address: str, log: Path) -> Iterator[subprocess.Popen[str]]:
    """tests.desktop.fake_notifications on the bus at `address`, once it owns its name."""
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.desktop.fake_notifications", os.fspath(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "ready", (
            f"fake notification service: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        )
        yield proc
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
