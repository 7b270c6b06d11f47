"""Dispatch latency on an idle engine.

- submit -> handler start: one task at a time (each waited for, the engine idle in
  between), from just before `await submit` to the handler's first line
  (time.perf_counter()); p50/p99 over 200 samples. Target p99 <= 10 ms.
- huey beside it: enqueue -> task start with huey's default consumer polling (4 threads).
- run_at -> start: submit with run_at = now + 50 ms; lateness of the handler's first line
  against run_at (wall clock). Target p99 <= 10 ms.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.bench import peers
from tests.bench.common import emit, median, note, parse_args, percentile, rnd, target, temp_dir

SAMPLES = 200
SAMPLES_QUICK = 30
IDLE_GAP = 0.005  # seconds between samples: the engine goes idle (and emits `idle`)
RUN_AT_AHEAD = 0.050


async def taskdeck_latency(samples: int) -> tuple[list[float], list[float]]:
    from core import Engine, EngineConfig

    starts: dict[int, tuple[float, float]] = {}

    async def probe(ctx: Any, payload: Any) -> None:
        starts[payload] = (time.perf_counter(), time.time())

    submit_lat: list[float] = []
    run_at_late: list[float] = []
    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "latency.db"), EngineConfig(max_concurrency=4))
        eng.register("probe", probe)
        await eng.start()
        await asyncio.sleep(0.2)
        for i in range(samples):
            await asyncio.sleep(IDLE_GAP)
            t0 = time.perf_counter()
            res = await eng.submit("probe", i)
            await eng.wait(res.id, timeout=30)
            submit_lat.append(starts[i][0] - t0)
        for i in range(samples, 2 * samples):
            await asyncio.sleep(IDLE_GAP)
            run_at = datetime.now(UTC) + timedelta(seconds=RUN_AT_AHEAD)
            res = await eng.submit("probe", i, run_at=run_at)
            await eng.wait(res.id, timeout=30)
            run_at_late.append(starts[i][1] - run_at.timestamp())
        await eng.stop(grace=0)
    return submit_lat, run_at_late


def ms(x: float) -> float:
    return round(x * 1000, 3)


def main() -> None:
    args = parse_args()
    samples = SAMPLES_QUICK if args.quick else SAMPLES
    runs: list[dict[str, float]] = []
    for i in range(args.runs):
        sub, late = asyncio.run(taskdeck_latency(samples))
        hy = peers.huey_latency(samples)
        r = {
            "submit_p50": percentile(sub, 50), "submit_p99": percentile(sub, 99), "submit_max": max(sub),
            "run_at_p50": percentile(late, 50), "run_at_p99": percentile(late, 99), "run_at_max": max(late),
            "run_at_min": min(late),
            "huey_p50": percentile(hy, 50), "huey_p99": percentile(hy, 99), "huey_max": max(hy),
        }  # fmt: skip
        runs.append(r)
        note(f"latency run {i + 1}/{args.runs}: " + ", ".join(f"{k} {ms(v)} ms" for k, v in r.items()))
    m = {k: median([r[k] for r in runs]) for k in runs[0]}
    figures: dict[str, Any] = {"samples": samples}
    figures.update({f"{k}_ms": ms(v) for k, v in m.items()})
    figures["ratio_submit_p99_huey_vs_taskdeck"] = (
        rnd(m["huey_p99"] / m["submit_p99"]) if m["submit_p99"] else None
    )
    targets = {
        "submit_to_start_p99_ms": target(figures["submit_p99_ms"], "<=", 10, unit=" ms"),
        "run_at_to_start_p99_ms": target(figures["run_at_p99_ms"], "<=", 10, unit=" ms"),
    }
    emit("latency", figures, targets, args)


if __name__ == "__main__":
    main()
