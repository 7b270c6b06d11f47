"""Shared fixtures: a real SQLite file per test, an injected clock, a started engine."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig, Event
from core.testing import FakeClock

# Collecting no test is a failure, never a pass: pytest exits 5, and `make test` fails.

# A suite started in the background by a non-interactive shell (`make test &`, some CI
# runners) inherits SIGINT ignored, and so would every process a test starts: the tests
# that stop a worker or `taskdeck watch` with SIGINT, as a terminal's Ctrl+C does, would
# wait for nothing. Handling it here gives each child the default disposition again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def engine(db_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    """A started engine on a real file with a fake clock; stopped at the end."""
    eng = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=1.0))
    eng.register("noop", noop)
    eng.register("echo", echo)
    await eng.start()
    yield eng
    await eng.stop(grace=0)


async def noop(ctx: Any, payload: Any) -> None:
    return None


async def echo(ctx: Any, payload: Any) -> Any:
    return payload


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the loop run until `predicate()` holds (a guard, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.002)


async def next_event(events: Any, kind: str, task_id: int | None = None, timeout: float = 10.0) -> Event:
    """The next event of `kind` (for `task_id`) from an events() iterator."""

    async def find() -> Event:
        async for ev in events:
            if ev.kind == kind and (task_id is None or ev.task_id == task_id):
                return ev
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(find(), timeout)
