"""A process for the files.copy crash test: opens an engine with the built-in kinds,
submits one files.copy task and prints a marker line per fact the killer relies on:

    TASK <id>             the files.copy task is committed
    COPIED <name>         a file is complete in the destination (its mtime is set)

    python -m tests.jobs.copy_worker DB SOURCE_FOLDER DESTINATION_FOLDER

Each copy is slowed a little (20 ms) so that the kill lands in the middle of the tree. It
runs until it is killed (or 120 s pass, a safety net)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from core import Engine
from core.jobs import files, register_builtin
from tests.jobs.resize_worker import config, say

SLOW = 0.02  # seconds per file


def slowed() -> None:
    real = files._Copier.file

    def file(self: Any, src: str, dst: str, *args: Any, **kwargs: Any) -> None:
        real(self, src, dst, *args, **kwargs)
        say(f"COPIED {os.path.basename(dst)}")
        time.sleep(SLOW)

    files._Copier.file = file  # type: ignore[method-assign]


async def main(db: str, source: str, destination: str) -> None:
    slowed()
    engine = await Engine.open(db, config())
    register_builtin(engine)
    await engine.start()
    res = await engine.submit("files.copy", {"source": source, "destination": destination})
    say(f"TASK {res.id}")
    try:
        await engine.wait(res.id, timeout=120)
    finally:
        await engine.stop(grace=0)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
