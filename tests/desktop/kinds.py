"""Small kinds the window tests register on a real engine: gates they open at will,
failures with a reason, file takers and parents with parts."""

from __future__ import annotations

import asyncio
from typing import Any

from core import Engine, Permanent, RetryPolicy, TaskContext

GATES: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    ev = GATES.get(name)
    if ev is None:
        ev = GATES[name] = asyncio.Event()
    return ev


async def gated(ctx: TaskContext, payload: dict[str, Any] | None) -> dict[str, Any]:
    """Reports progress until its gate opens (or `steps` run out), then ends."""
    p = payload or {}
    total = int(p.get("total", 1000))
    step = int(p.get("step", 10))
    done = int((ctx.resume_data or {}).get("done", 0))
    name = str(p.get("gate", "default"))
    n = 0
    while not gate(name).is_set():
        await ctx.yield_point()
        done = min(total - step, done + step)
        ctx.progress(done=done, total=total, message=p.get("message"))
        n += 1
        if n % 10 == 0:
            await ctx.checkpoint({"done": done})
        await asyncio.sleep(float(p.get("tick", 0.02)))
    ctx.log(f"gate {name} opened")
    if p.get("fail"):
        raise Permanent(str(p["fail"]))
    return {"done": True}


async def failing(ctx: TaskContext, payload: dict[str, Any] | None) -> None:
    p = payload or {}
    ctx.log("about to fail")
    if p.get("once") and ctx.attempt > 1:
        return None
    raise RuntimeError(str(p.get("error", "HTTP 500 Internal Server Error")))


async def quick(ctx: TaskContext, payload: Any) -> Any:
    ctx.log("quick job ran")
    return payload


async def file_job(ctx: TaskContext, payload: dict[str, Any]) -> None:
    await gate("files").wait()


async def parent_job(ctx: TaskContext, payload: dict[str, Any]) -> None:
    from core import Submission

    parts = int(payload.get("parts", 3))
    await ctx.spawn_children(
        [
            Submission("test.gate", {"gate": f"part{i}", "total": 100}, label=f"part {i + 1}")
            for i in range(parts)
        ]
    )


def register(engine: Engine) -> None:
    engine.register(
        "test.gate",
        gated,
        retry=RetryPolicy.none(),
        schema={
            "type": ["object", "null"],
            "properties": {
                "gate": {"type": "string", "description": "which gate ends it"},
                "total": {"type": "integer", "minimum": 1},
                "bytes": {"type": "boolean"},
                "fail": {"type": "string"},
                "message": {"type": "string"},
                "output_dir": {"type": "string"},
                "step": {"type": "integer"},
                "tick": {"type": "number"},
                "password": {"type": "string"},
            },
        },
        description="Waits for a gate the test opens",
    )
    engine.register("test.fail", failing, retry=RetryPolicy.fixed(2, 0.05))
    engine.register("test.retry", failing, retry=RetryPolicy.fixed(4, 3.0))
    engine.register("test.quick", quick, retry=RetryPolicy.none())
    engine.register(
        "test.file",
        file_job,
        schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    )
    engine.register("test.parent", parent_job)
