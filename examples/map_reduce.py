"""Map-reduce with a join strategy: count words in chunks, one child task per chunk.

The parent splits the text and spawns a child per chunk; with fail_fast=False it waits for
all of them, and its finalize merges the counts if at least 75 % of the chunks completed
(join_percentage), naming the failed ones otherwise.

    python -m examples.map_reduce
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from core import Engine, Permanent, RetryPolicy, Submission, join_percentage

TEXT = """the quick brown fox jumps over the lazy dog
the dog sleeps and the fox runs
a quick brown dog is not a fox
CORRUPT
the end"""


async def split(ctx: Any, payload: dict[str, Any]) -> None:
    lines = payload["text"].splitlines()
    await ctx.spawn_children([Submission("count", {"line": line, "n": i}) for i, line in enumerate(lines)])


async def count(ctx: Any, payload: dict[str, Any]) -> dict[str, int]:
    if payload["line"] == "CORRUPT":
        raise Permanent(f"chunk {payload['n']} is unreadable")
    return dict(Counter(payload["line"].split()))


async def merge(ctx: Any, payload: dict[str, Any], children: list[Any]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counts in join_percentage(children, 0.75):  # tolerate one bad chunk in four
        total.update(counts)
    return dict(total.most_common(3))


async def main() -> dict[str, int]:
    with tempfile.TemporaryDirectory() as d:
        async with Engine.open(Path(d) / "tasks.db") as engine:
            engine.register("count", count, retry=RetryPolicy.none())
            engine.register("wordcount", split, finalize=merge)
            await engine.start()
            res = await engine.submit("wordcount", {"text": TEXT}, fail_fast=False)
            rec = await engine.wait(res.id, timeout=30)
            print(f"wordcount {rec.state.value}: top words {rec.result}")
            for child in engine.children(res.id):
                if child.error:
                    print(f"  chunk task {child.id} {child.state.value}: {child.error}")
            return rec.result  # type: ignore[no-any-return]


if __name__ == "__main__":
    asyncio.run(main())
