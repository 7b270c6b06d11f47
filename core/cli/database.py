"""Where the database is, and how a command reaches it.

An engine may run in another process (`taskdeck worker`, the window); it holds the
engine lock. Queries and submissions go through a `Client` either way. Control commands
go through a Client when an engine runs (the engine applies the request from its inbox
within ~250 ms), else through an `Engine` opened here without `start()`, which applies
them at once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import platformdirs

from core import Client, CorruptDatabase, Engine, EngineLocked
from core.cli.errors import CommandError
from core.jobs import register_builtin
from core.lock import EngineLock

ENV = "TASKDECK_DB"


def resolve(option: str | None) -> Path:
    """--db, else $TASKDECK_DB, else tasks.db in the user data directory (created)."""
    chosen = option or os.environ.get(ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.parent.is_dir():
            raise CommandError(f"cannot open {path}: the folder {path.parent} does not exist")
        return path
    folder = Path(platformdirs.user_data_dir("taskdeck"))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / "tasks.db"


def engine_running(path: Path) -> bool:
    """Whether an engine (in any process) holds the database now."""
    return EngineLock(os.fspath(path)).is_held_elsewhere()


async def prepare(path: Path) -> None:
    """Create or migrate the database with a short-lived engine, unless one runs.
    Registering the built-in kinds publishes them, so a Client validates their payloads."""
    try:
        engine = await Engine.open(path)
    except EngineLocked:
        return  # an engine started meanwhile: it created or migrated the file
    try:
        register_builtin(engine)
    finally:
        await engine.stop(grace=0)


@asynccontextmanager
async def client(path: Path) -> AsyncIterator[Client]:
    """A Client on the database, creating or migrating it first if no engine runs."""
    try:
        c = await Client.open(path)
    except CorruptDatabase:
        # A missing file or an older schema; a foreign or damaged file makes the engine
        # raise its own CorruptDatabase below, which names the problem.
        if engine_running(path):
            raise
        await prepare(path)
        c = await Client.open(path)
    try:
        yield c
    finally:
        await c.close()


async def control(path: Path, op: Callable[[Engine | Client], Awaitable[None]]) -> bool:
    """Run `op` on an engine of our own, where it applies at once (True), or, when an
    engine runs elsewhere, on a Client, which queues it for that engine (False)."""
    if not engine_running(path):
        if not await asyncio.to_thread(path.exists):
            await prepare(path)
        try:
            engine = await Engine.open(path)
        except EngineLocked:
            pass  # an engine started meanwhile: ask it through the inbox
        else:
            try:
                register_builtin(engine)
                await op(engine)
                return True
            finally:
                await engine.stop(grace=0)
    async with client(path) as c:
        await op(c)
        return False
