"""Opening the database for the window: an Engine of our own, or, when a `taskdeck
worker` already holds it, a Client attached to that worker."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core import Client, Engine, EngineConfig, EngineLocked, Recovery
from core.jobs import register_builtin

logger = logging.getLogger(__name__)

Backend = Engine | Client
Setup = Callable[[Engine], None]  # registers extra kinds on an engine we own (tests do)


@dataclass(frozen=True, slots=True)
class Opened:
    backend: Backend
    attached: bool  # a Client on a database whose engine runs in another process
    holder_pid: int | None
    recovery: Recovery | None


async def open_backend(path: Path, config: EngineConfig | None = None, setup: Setup | None = None) -> Opened:
    """Open and start an engine on `path`; attach as a Client if another process holds it.

    Raises CorruptDatabase or SchemaTooNew (the window offers another file or a fresh one)."""
    try:
        engine = await Engine.open(path, config)
    except EngineLocked as e:
        logger.info("database %s is held by pid %s: attaching as a client", path, e.pid)
        client = await Client.open(path)
        return Opened(client, True, e.pid, None)
    try:
        register_builtin(engine)
        if setup is not None:
            setup(engine)
        await engine.start()
    except BaseException:
        await engine.stop(grace=0)
        raise
    recovery = engine.last_recovery
    logger.info("engine started on %s (recovered: %s)", path, recovery)
    return Opened(engine, False, None, recovery)


def set_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename a database we cannot use (and its -wal/-shm) beside itself, keeping it:
    tasks.db -> tasks.db.unusable-20260105-0900. Returns the new name of the main file."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.unusable-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.unusable-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target
