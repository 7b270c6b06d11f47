"""`taskdeck worker`: the engine, headless, until SIGINT or SIGTERM.

The first signal stops gracefully (running tasks get GRACE seconds to finish); a second
one interrupts them at once. Interrupted tasks stay resumable: pending at the next open."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from core import Engine, EngineConfig, EngineLocked
from core.cli.errors import CommandError
from core.cli.output import out
from core.jobs import register_builtin
from core.resources import SYSTEM_PRESSURE

GRACE = 10.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run(path: Path, *, verbose: bool = False) -> int:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="taskdeck worker: %(levelname)s %(name)s: %(message)s",
    )
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[int] = asyncio.Queue()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    try:
        try:
            engine = await Engine.open(path, EngineConfig(pressure_sources=SYSTEM_PRESSURE))
        except EngineLocked as e:
            holder = f"process {e.pid}" if e.pid else "another process"
            raise CommandError(
                f"{path} is already in use by {holder} (a taskdeck worker or window)"
            ) from None
        try:
            register_builtin(engine)
            await engine.start()
        except BaseException:
            await engine.stop(grace=0)
            raise
        _say_ready(engine, path)
        await signals.get()
        _say(f"stopping; running tasks have {GRACE:g} s to finish (signal again to stop now)")
        await _stop(engine, signals)
        _say("stopped")
        return 0
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


def _say_ready(engine: Engine, path: Path) -> None:
    r = engine.last_recovery
    if r.total:
        _say(
            f"recovered {r.total} tasks ({r.resumed} resumed, {r.restarted} restarted, "
            f"{r.failed} failed, {r.finalized} finalized)"
        )
    pid = os.getpid()
    _say(f"running on {path} (pid {pid}); stop with Ctrl+C or kill -TERM {pid}")


def _say(message: str) -> None:
    """A status line, flushed at once: whoever started the worker may be waiting for it."""
    out(f"taskdeck worker: {message}")
    sys.stdout.flush()


async def _stop(engine: Engine, signals: asyncio.Queue[int]) -> None:
    """stop(grace=GRACE), cut short by a second signal into stop(grace=0)."""
    graceful = asyncio.create_task(engine.stop(grace=GRACE), name="taskdeck worker stop")
    second = asyncio.create_task(signals.get(), name="taskdeck worker second signal")
    try:
        await asyncio.wait([graceful, second], return_when=asyncio.FIRST_COMPLETED)
    finally:
        second.cancel()
        await asyncio.wait([second])
    if graceful.done():
        graceful.result()
        return
    # Engine.stop cannot shorten a grace period in progress: end that call (it is waiting
    # for the running tasks) and stop again without grace.
    _say("stopping now; running tasks are interrupted and stay resumable")
    graceful.cancel()
    await asyncio.wait([graceful])
    await engine.stop(grace=0)
