"""A batch with per-item retry inside one task: ctx.map.

One task checks 20 URLs, 4 at a time. Items that fail with a transient error are retried
(up to 3 times, with backoff on the engine's clock); an item that keeps failing leaves its
exception in its slot and the others still count. Progress reports items done of total.

    python -m examples.batch_retry
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from core import Engine, Permanent, RetryPolicy

attempts: dict[int, int] = {}


async def check(n: int) -> str:
    attempts[n] = attempts.get(n, 0) + 1
    await asyncio.sleep(0.01)
    if n % 7 == 3 and attempts[n] < 3:
        raise ConnectionResetError(f"item {n}: connection reset")  # transient: retried
    if n == 13:
        raise Permanent(f"item {n}: 404 not found")  # not retried
    return f"item {n}: ok"


async def check_all(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    results = await ctx.map(range(payload["items"]), check, concurrency=4,
                            retry=RetryPolicy.exponential(max_retries=3, base=0.05, jitter=0))  # fmt: skip
    failed = {i: str(r) for i, r in enumerate(results) if isinstance(r, BaseException)}
    return {
        "ok": len(results) - len(failed),
        "failed": failed,
        "retried": sorted(n for n, a in attempts.items() if a > 1),
    }


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        async with Engine.open(Path(d) / "tasks.db") as engine:
            engine.register("check_all", check_all)
            await engine.start()
            res = await engine.submit("check_all", {"items": 20})
            rec = await engine.wait(res.id, timeout=30)
            print(f"batch {rec.state.value}: {rec.result}")
            return rec.result  # type: ignore[no-any-return]


if __name__ == "__main__":
    asyncio.run(main())
