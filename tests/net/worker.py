"""A worker process for the network crash test: an engine with the network kinds that
reports what it does as marker lines on stdout, so the test can SIGKILL it at a known
point and start another on the same database.

    python -m tests.net.worker DB [--submit JSON] [--concurrency N]

Lines: READY, SUBMITTED <id>, PART <part number> (a part's completion is committed),
DONE <id> <state> (the upload ended)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from core import Engine, EngineConfig
from core.jobs.net import register_network, submit


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("--submit", default=None, help="an upload.s3 payload to submit first")
    p.add_argument("--concurrency", type=int, default=1)
    ns = p.parse_args(argv)
    engine = await Engine.open(ns.db, EngineConfig(max_concurrency=ns.concurrency))
    register_network(engine)
    events = engine.events()
    await engine.start()
    say("READY")
    if ns.submit:
        res = await submit(engine, "upload.s3", json.loads(ns.submit))
        say(f"SUBMITTED {res.id}")
    async for ev in events:
        rec = engine.get(ev.task_id) if ev.task_id is not None else None
        if rec is None:
            continue
        if ev.kind == "completed" and rec.kind == "upload.s3.part":
            say(f"PART {rec.payload['part']}")
        if rec.kind == "upload.s3" and rec.state.is_terminal:
            say(f"DONE {rec.id} {rec.state.value}")
            break
    await engine.stop(grace=0)


if __name__ == "__main__":
    asyncio.run(main())
