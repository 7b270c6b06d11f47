"""A process for the resize crash test: opens an engine with the built-in kinds, submits
one resize.images task and prints a marker line per fact the killer relies on:

    READY                 the engine is started
    PARENT <id>           the resize.images task is committed
    DONE <id>             a resize.image child completed (committed)

    python -m tests.jobs.resize_worker DB SOURCE_FOLDER OUTPUT_FOLDER

It runs until it is killed (or 120 s pass, a safety net)."""

from __future__ import annotations

import asyncio
import os
import sys

from core import Engine, EngineConfig, EventKind
from core.jobs import register_builtin


def config() -> EngineConfig:
    return EngineConfig(max_concurrency=4, process_workers=2, retention_keep=None, retention_days=None)


def say(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the test is gone
        os._exit(3)


async def main(db: str, source: str, output: str) -> None:
    engine = await Engine.open(db, config())
    register_builtin(engine)
    await engine.start()
    say("READY")
    events = engine.events()
    res = await engine.submit(
        "resize.images",
        {"inputs": [source], "output_dir": output, "percent": 50, "overwrite": True},
        fail_fast=False,
    )
    say(f"PARENT {res.id}")

    async def follow() -> None:
        async for ev in events:
            if ev.kind == EventKind.COMPLETED and ev.task_id != res.id:
                say(f"DONE {ev.task_id}")

    try:
        await asyncio.wait_for(follow(), 120)
    finally:
        await engine.stop(grace=0)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
