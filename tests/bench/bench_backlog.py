"""E2E throughput with a big backlog that must not slow dispatch (SPEC §4.1).

The measured part is bench_e2e's: N no-op tasks at NORMAL priority submitted one
`await submit` at a time, tasks/s from the first submit to the last completion. Scenarios,
each against the empty-queue figure measured in the same run (target ratio >= 0.8):

- low:          100,000 tasks already pending at Priority.LOW (less urgent than the measured);
- group_full:   100,000 pending tasks of group g at Priority.HIGH (more urgent: ahead of the
                measured ones) while g is full: set_group_limit(g, 1) and one long task of g
                holds it. The holder takes a slot, so this scenario runs max_concurrency 5
                (the measured tasks still get 4);
- group_paused: 100,000 tasks of a paused group g (pause_group) at Priority.HIGH.

The backlog is created with submit_many before timing starts.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from typing import Any

from tests.bench.common import (
    emit,
    median,
    noop,
    note,
    parse_args,
    ratio,
    rnd,
    target,
    temp_dir,
    wait_all,
)

N = 10_000
N_QUICK = 2_000
BACKLOG = 100_000
BACKLOG_QUICK = 20_000
SCENARIOS = ("empty", "low", "group_full", "group_paused")


async def scenario(name: str, n: int, backlog: int, info: dict[str, Any]) -> float:
    from core import Engine, EngineConfig, Priority, Submission

    holding = asyncio.Event()

    async def hold(ctx: Any, payload: Any) -> None:
        holding.set()
        await asyncio.sleep(3600)

    concurrency = 5 if name == "group_full" else 4
    with temp_dir() as d:
        path = os.path.join(d, "backlog.db")
        eng = await Engine.open(path, EngineConfig(max_concurrency=concurrency))
        eng.register("noop", noop)
        eng.register("hold", hold)
        await eng.start()
        t_setup = time.perf_counter()
        if name == "group_full":
            await eng.set_group_limit("g", 1)
            await eng.submit("hold", group="g")
            await asyncio.wait_for(holding.wait(), 10)
        await eng.hold()  # nothing starts while the backlog is created
        if name == "low":
            await eng.submit_many([Submission("noop", i, priority=Priority.LOW) for i in range(backlog)])
        elif name == "group_paused":
            await eng.pause_group("g")
        if name.startswith("group"):
            await eng.submit_many(
                [Submission("noop", i, group="g", priority=Priority.HIGH) for i in range(backlog)]
            )
        info["setup_s"] = time.perf_counter() - t_setup
        await asyncio.sleep(0.2)
        counts = eng.counts()
        pending_before = counts["pending"] + counts["paused"]
        await eng.release()
        ids: list[int] = []
        t0 = time.perf_counter()
        for _ in range(n):
            ids.append((await eng.submit("noop")).id)
        await wait_all(eng, ids)
        elapsed = time.perf_counter() - t0
        counts = eng.counts()
        info["backlog_left"] = counts["pending"] + counts["paused"]
        info["backlog_ran"] = pending_before - info["backlog_left"]
        await eng.stop(grace=0)
        conn = sqlite3.connect(path)
        info["preempted_events"] = conn.execute(
            "SELECT count(*) FROM events WHERE kind = 'preempted'"
        ).fetchone()[0]
        conn.close()
    return n / elapsed


def main() -> None:
    args = parse_args()
    n = N_QUICK if args.quick else N
    backlog = BACKLOG_QUICK if args.quick else BACKLOG
    tps: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    infos: dict[str, dict[str, Any]] = {}
    for i in range(args.runs):
        for s in SCENARIOS:
            info: dict[str, Any] = {}
            tps[s].append(asyncio.run(scenario(s, n, backlog, info)))
            infos[s] = info
            note(f"backlog run {i + 1}/{args.runs} {s}: {tps[s][-1]:.0f} tasks/s {info}")
    m = {s: median(v) for s, v in tps.items()}
    figures: dict[str, Any] = {"n": n, "backlog": backlog}
    for s in SCENARIOS:
        figures[f"{s}_tps"] = rnd(m[s])
    for s in SCENARIOS[1:]:
        figures[f"ratio_{s}"] = ratio(m[s], m["empty"])
    figures["last_run"] = {
        s: {k: (rnd(v) if isinstance(v, float) else v) for k, v in infos[s].items()} for s in SCENARIOS
    }
    figures["samples"] = {s: [round(x) for x in v] for s, v in tps.items()}
    targets = {f"{s}_vs_empty": target(figures[f"ratio_{s}"], ">=", 0.8, unit="x") for s in SCENARIOS[1:]}
    emit("backlog", figures, targets, args)


if __name__ == "__main__":
    main()
