"""An idle engine with 10,000 delayed tasks (due in 1 hour) and nothing due costs < 1% of
one core (SPEC §4.1: no work proportional to the queue). Each run is a fresh process:
CPU time (psutil, user + system, all threads) over 30 s of wall time (5 s with --quick);
then one task with delay 0.2 s is submitted and its start's lateness against its run_at
is reported (target <= 10 ms, as bench_latency's run_at figure)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psutil

from tests.bench.common import (
    child_result,
    cpu_seconds,
    emit,
    median,
    noop,
    note,
    parse_args,
    rnd,
    run_child,
    target,
    temp_dir,
)

DELAYED = 10_000
IDLE_SECONDS = 30.0
IDLE_SECONDS_QUICK = 5.0
MODULE = "tests.bench.bench_idle"


async def measure(delayed: int, seconds: float) -> dict[str, Any]:
    from core import Engine, EngineConfig, Submission

    started: dict[str, float] = {}

    async def probe(ctx: Any, payload: Any) -> None:
        started["at"] = time.time()

    out: dict[str, Any] = {}
    proc = psutil.Process()
    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "idle.db"), EngineConfig(max_concurrency=4))
        eng.register("noop", noop)
        eng.register("probe", probe)
        await eng.start()
        await eng.submit_many([Submission("noop", i, delay=3600) for i in range(delayed)])
        await asyncio.sleep(1.0)  # let the submit and its follow-ups settle
        cpu0, wall0, ctx0 = cpu_seconds(), time.perf_counter(), proc.num_ctx_switches().voluntary
        await asyncio.sleep(seconds)
        cpu1, wall1, ctx1 = cpu_seconds(), time.perf_counter(), proc.num_ctx_switches().voluntary
        wall = wall1 - wall0
        out.update(cpu_percent=100 * (cpu1 - cpu0) / wall, cpu_s=cpu1 - cpu0, wall_s=wall,
                   wakeups_per_s=(ctx1 - ctx0) / wall, threads=proc.num_threads())  # fmt: skip
        t_submit = time.time()
        res = await eng.submit("probe", delay=0.2)
        rec = await eng.wait(res.id, timeout=30)
        due = rec.run_at.timestamp() if rec.run_at is not None else t_submit + 0.2
        out["delay_lateness_ms"] = 1000 * (started["at"] - due)
        out["pending"] = eng.counts()["pending"]
        await eng.stop(grace=0)
    return out


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child_result(asyncio.run(measure(args.child["delayed"], args.child["seconds"])))
        return
    seconds = IDLE_SECONDS_QUICK if args.quick else IDLE_SECONDS
    runs = []
    for i in range(args.runs):
        runs.append(run_child(MODULE, {"delayed": DELAYED, "seconds": seconds}))
        note(f"idle run {i + 1}/{args.runs}: {runs[-1]}")
    figures: dict[str, Any] = {
        "delayed": DELAYED,
        "idle_seconds": seconds,
        "cpu_percent_of_one_core": rnd(median([r["cpu_percent"] for r in runs]), 3),
        "wakeups_per_s": rnd(median([r["wakeups_per_s"] for r in runs])),
        "threads": runs[-1]["threads"],
        "delay_lateness_ms": rnd(median([r["delay_lateness_ms"] for r in runs]), 3),
        "samples_cpu_percent": [rnd(r["cpu_percent"], 3) for r in runs],
    }
    targets = {
        "cpu_percent": target(figures["cpu_percent_of_one_core"], "<=", 1.0, unit="%"),
        "delay_lateness_ms": target(figures["delay_lateness_ms"], "<=", 10, unit=" ms"),
    }
    emit("idle", figures, targets, args)


if __name__ == "__main__":
    main()
