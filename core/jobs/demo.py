"""`demo.sleep`: sleeps N seconds in steps, reporting progress, optionally failing.
It lets a new user watch the engine work from the CLI alone."""

from __future__ import annotations

import asyncio
from typing import Any

from core import Engine, Permanent, TaskContext
from core.jobs.common import titled

KIND = "demo.sleep"
SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": 86400,
            "default": 5,
            "description": "how long to sleep",
        },
        "steps": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "progress updates"},
        "fail": {
            "enum": [False, True, "once", "permanent"],
            "description": "fail at the end: every attempt, the first attempt only, or for good",
        },
        "message": {"type": "string", "maxLength": 200},
    },
    "additionalProperties": False,
}
titled(
    SCHEMA,
    {
        "seconds": "Seconds",
        "steps": "Progress steps",
        "fail": "Fail at the end",
        "message": "Progress message",
    },
)


async def sleep(ctx: TaskContext, payload: dict[str, Any] | None) -> dict[str, Any]:
    """Sleep for a while, reporting progress; resumes where it stopped."""
    payload = payload or {}
    seconds = float(payload.get("seconds", 5))
    steps = int(payload.get("steps", max(1, min(100, int(seconds * 4) or 1))))
    start = int((ctx.resume_data or {}).get("step", 0))
    if start:
        ctx.log(f"resuming at step {start} of {steps}")
    for step in range(start, steps):
        await ctx.yield_point()
        ctx.progress(done=step, total=steps, message=payload.get("message") or f"step {step + 1} of {steps}")
        await asyncio.sleep(seconds / steps)
        if (step + 1) % max(1, steps // 10) == 0:
            await ctx.checkpoint({"step": step + 1})
    ctx.progress(done=steps, total=steps)
    fail = payload.get("fail", False)
    if fail == "permanent":
        raise Permanent("asked to fail for good (payload fail='permanent')")
    if fail is True or (fail == "once" and ctx.attempt == 1):
        raise RuntimeError(f"asked to fail (payload fail={fail!r}, attempt {ctx.attempt})")
    ctx.log(f"slept {seconds:g} s")
    return {"slept": seconds, "attempt": ctx.attempt}


def register(engine: Engine) -> None:
    engine.register(KIND, sleep, schema=SCHEMA, description="Sleep for a while, reporting progress")
