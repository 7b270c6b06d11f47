"""A-01 end to end: the real `taskdeck` window process, killed with SIGKILL mid-run and
started again on the same profile, shows the recovery banner and finishes the jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import Client, TaskRecord

pytestmark = pytest.mark.crash

READY = "window ready"


def launch(profile: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, TASKDECK_THEME="light")
    return subprocess.Popen(
        [sys.executable, "-m", "desktop", "--profile", str(profile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_log(profile: Path, text: str, after: int = 0, timeout: float = 60) -> str:
    log = profile / "logs" / "taskdeck-window.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            content = log.read_text()[after:]
            for line in content.splitlines():
                if text in line:
                    return line
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the window's log within {timeout} s")


def tasks(db: Path) -> list[TaskRecord]:
    async def read() -> list[TaskRecord]:
        async with Client.open(db) as c:
            return [r for i in (1, 2) if (r := c.get(i)) is not None]

    return asyncio.run(read())


def until(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_A01_after_kill_9_the_window_shows_the_recovery_banner_and_resumes(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    db = profile / "tasks.db"
    first = launch(profile)
    try:
        wait_log(profile, READY)
        for name in ("beach.jpg", "city.jpg"):
            subprocess.run(
                [sys.executable, "-m", "core.cli", "submit", "demo.sleep", "--db", str(db),
                 "--payload", '{"seconds": 6, "steps": 24}', "--label", name],
                check=True, capture_output=True,
            )  # fmt: skip
        until(lambda: [r.state.value for r in tasks(db)] == ["running", "running"])
        until(lambda: all(r.resume_data for r in tasks(db)))  # both checkpointed
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    size = (profile / "logs" / "taskdeck-window.log").stat().st_size
    second = launch(profile)
    try:
        banner = wait_log(profile, "recovery banner:", after=size)
        assert banner.endswith("Recovered 2 jobs from the last session: 2 resumed from where they stopped.")
        wait_log(profile, READY, after=size)
        until(lambda: [r.state.value for r in tasks(db)] == ["completed", "completed"])
        recs = tasks(db)
        assert all(r.attempt == 1 for r in recs)  # a crash is not a failed attempt

        async def logs() -> list[str]:
            async with Client.open(db) as c:
                return [ln.message for ln in c.logs(1)]

        assert any(m.startswith("resuming at step") for m in asyncio.run(logs()))
    finally:
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
