"""Task trees and graphs (issue #4).

Fan-out: one parent spawns 10,000 no-op children (spawn_children, one transaction); time
from submitting the parent to its completion (children run, then finalize), against the
same 10,000 tasks submitted flat with submit_many and run to the last completion.
Target: flat time / fan-out time >= 0.8.

Graph: a random DAG of 1,000 (and 10,000) no-op nodes, each depending on up to 5 earlier
ones, submitted with submit_graph and run to the last completion. The dependency
bookkeeping must stay O(edges): seconds per edge at 10k nodes over that at 1k stays near 1
(target <= 1.5)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from tests.bench.common import emit, median, noop, note, parse_args, ratio, rnd, target, temp_dir

CHILDREN = 10_000
CHILDREN_QUICK = 2_000
GRAPH_SIZES = (1_000, 10_000)
GRAPH_SIZES_QUICK = (300, 3_000)


async def _drain(eng: Any) -> None:
    while eng.tasks(limit=1):
        await asyncio.sleep(0.005)


async def fan_out_seconds(n: int) -> float:
    from core import Engine, EngineConfig, Submission

    async def parent(ctx: Any, payload: Any) -> None:
        await ctx.spawn_children([Submission("noop") for _ in range(n)])

    async def finalize(ctx: Any, payload: Any, children: Any) -> int:
        return len(children)

    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "fan.db"), EngineConfig(retention_keep=None))
        eng.register("noop", noop)
        eng.register("parent", parent, finalize=finalize)
        await eng.start()
        t0 = time.perf_counter()
        res = await eng.submit("parent")
        rec = await eng.wait(res.id, timeout=600)
        elapsed = time.perf_counter() - t0
        if rec.result != n:
            raise RuntimeError(f"the parent saw {rec.result} children, not {n}")
        await eng.stop(grace=0)
    return elapsed


async def flat_seconds(n: int) -> float:
    from core import Engine, EngineConfig, Submission

    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "flat.db"), EngineConfig(retention_keep=None))
        eng.register("noop", noop)
        await eng.start()
        t0 = time.perf_counter()
        res = await eng.submit_many([Submission("noop") for _ in range(n)])
        await eng.wait(res[-1].id, timeout=600)
        await _drain(eng)
        elapsed = time.perf_counter() - t0
        await eng.stop(grace=0)
    return elapsed


async def graph_seconds(n: int, seed: int) -> tuple[float, int]:
    from core import Engine, EngineConfig, Submission

    rng = random.Random(seed)
    graph = {}
    edges = 0
    for i in range(n):
        deps = (
            tuple(f"n{j}" for j in rng.sample(range(max(0, i - 50), i), min(i, rng.randint(0, 5))))
            if i
            else ()
        )
        edges += len(deps)
        graph[f"n{i}"] = Submission("noop", depends_on=deps)
    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "graph.db"), EngineConfig(retention_keep=None))
        eng.register("noop", noop)
        await eng.start()
        t0 = time.perf_counter()
        ids = await eng.submit_graph(graph)
        await eng.wait(ids[f"n{n - 1}"], timeout=600)
        await _drain(eng)
        elapsed = time.perf_counter() - t0
        if eng.counts()["completed"] != n:
            raise RuntimeError(f"{eng.counts()['completed']} of {n} graph nodes completed")
        await eng.stop(grace=0)
    return elapsed, edges


def main() -> None:
    args = parse_args()
    n = CHILDREN_QUICK if args.quick else CHILDREN
    sizes = GRAPH_SIZES_QUICK if args.quick else GRAPH_SIZES
    fan, flat = [], []
    for i in range(args.runs):
        fan.append(asyncio.run(fan_out_seconds(n)))
        flat.append(asyncio.run(flat_seconds(n)))
        note(f"trees run {i + 1}/{args.runs}: fan-out {fan[-1]:.2f} s, flat {flat[-1]:.2f} s")
    per_edge: dict[int, float] = {}
    graph_figures: dict[str, Any] = {}
    for size in sizes:
        samples = [asyncio.run(graph_seconds(size, seed=run)) for run in range(args.runs)]
        seconds = median([s for s, _ in samples])
        edges = samples[0][1]
        per_edge[size] = seconds / max(1, edges)
        graph_figures[f"graph_{size}"] = {"seconds": rnd(seconds, 3), "edges": edges,
                                          "us_per_edge": rnd(per_edge[size] * 1e6)}  # fmt: skip
        note(f"graph {size} nodes, {edges} edges: {seconds:.2f} s")
    small, large = sizes
    growth = per_edge[large] / per_edge[small]
    figures = {
        "children": n,
        "fan_out_seconds": rnd(median(fan), 3),
        "flat_submit_many_seconds": rnd(median(flat), 3),
        "flat_over_fan_out": ratio(median(flat), median(fan)),
        **graph_figures,
        "per_edge_growth": rnd(growth, 3),
    }
    emit("trees", figures, {
        "fan_out_vs_flat": target(figures["flat_over_fan_out"], ">=", 0.8, unit="x"),
        "per_edge_growth": target(figures["per_edge_growth"], "<=", 1.5, unit="x"),
    }, args)  # fmt: skip


if __name__ == "__main__":
    main()
