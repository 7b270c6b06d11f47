"""Module-level handlers for the process-handler tests (a spawned worker imports them)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def count(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Counts to n, reporting progress and IO, checkpointing, stopping when interrupted."""
    start = (ctx.resume_data or {}).get("i", 0)
    for i in range(start, payload["n"]):
        ctx.yield_point()
        time.sleep(payload.get("sleep", 0.0))
        ctx.progress(done=i + 1, total=payload["n"])
        ctx.record_io(read=100, written=10)
        if (i + 1) % 5 == 0:
            ctx.checkpoint({"i": i + 1})
    ctx.log(f"counted in pid {os.getpid()}")
    return {"pid": os.getpid(), "from": start, "attempt": ctx.attempt}


def die(ctx: Any, payload: Any) -> None:
    """The worker process is killed while it runs this."""
    os.kill(os.getpid(), signal.SIGKILL)


def fail(ctx: Any, payload: Any) -> None:
    raise ValueError(f"bad value {payload!r}")


def ignore_interrupts(ctx: Any, payload: Any) -> None:
    while True:
        time.sleep(0.01)


def spawn_parts(ctx: Any, payload: dict[str, Any]) -> str:
    """A process handler that spawns children."""
    from core import Submission

    results = ctx.spawn_children([Submission("part", i) for i in range(payload["n"])])
    return f"spawned {len(results)}"
