"""A diamond of dependent steps passing results: fetch -> (resize, thumbnail) -> publish.

submit_graph names the steps and what each depends on; a step reads its dependencies'
results with ctx.dependency_results() (or one with ctx.result_of(id)). If fetch failed,
every step below it would end `dependency_failed` instead of running.

    python -m examples.diamond
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from core import Engine, Submission


async def fetch(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return {"photo": payload["url"].rsplit("/", 1)[-1], "width": 4000}


async def resize(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    (source,) = (await ctx.dependency_results()).values()
    return {"file": f"{payload['name']}-{source['photo']}", "width": min(source["width"], payload["width"])}


async def publish(ctx: Any, payload: dict[str, Any]) -> list[str]:
    made = (await ctx.dependency_results()).values()
    return [f"{m['file']} ({m['width']} px)" for m in made]


async def main() -> list[str]:
    with tempfile.TemporaryDirectory() as d:
        async with Engine.open(Path(d) / "tasks.db") as engine:
            for kind, fn in (("fetch", fetch), ("resize", resize), ("publish", publish)):
                engine.register(kind, fn)
            await engine.start()
            ids = await engine.submit_graph({
                "fetch": Submission("fetch", {"url": "https://example.org/beach.jpg"}),
                "web": Submission("resize", {"name": "web", "width": 1600}, depends_on=("fetch",)),
                "thumb": Submission("resize", {"name": "thumb", "width": 320}, depends_on=("fetch",)),
                "publish": Submission("publish", {}, depends_on=("web", "thumb")),
            })  # fmt: skip
            rec = await engine.wait(ids["publish"], timeout=30)
            print(f"publish {rec.state.value}: {rec.result}")
            print(f"  ids {ids}; fetch was needed by {engine.dependents(ids['fetch'])}")
            return rec.result  # type: ignore[no-any-return]


if __name__ == "__main__":
    asyncio.run(main())
