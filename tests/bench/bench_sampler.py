"""Cost of the resource sampler (SPEC §4.3): the real PsutilSampler plus the engine's
per-sample work (EWMA, learned capacities, pressure sources), at the real 1 s interval,
as a percentage of one core. Target < 0.5%.

Two measurements, each run in fresh processes (as bench_idle):
- idle difference: an idle engine (real clock, nothing queued) with the default sampler
  vs one whose sampler is a trivial function, CPU time (time.process_time(), all
  threads) over 20 s of wall time (5 s with --quick); the difference is what sampling
  costs. The two alternate (psutil, trivial, psutil, ...); medians.
- direct: in the default-sampler process after its idle window, 1000 calls of
  PsutilSampler()() and 1000 of the engine's own per-sample step (`_sample`, which calls
  the sampler), CPU µs per call; at 1 Hz, µs per call / 10^4 is the % of one core.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from tests.bench.common import (
    child_result,
    emit,
    median,
    note,
    parse_args,
    rnd,
    run_child,
    target,
    temp_dir,
)

IDLE_SECONDS = 20.0
IDLE_SECONDS_QUICK = 5.0
CALLS = 1000
MODULE = "tests.bench.bench_sampler"


def trivial_sampler() -> dict[str, float]:
    return {}


def per_call_us(fn: Any, calls: int) -> float:
    fn()  # the first call of a counter-based sampler only primes it
    c0 = time.process_time()
    for _ in range(calls):
        fn()
    return 1e6 * (time.process_time() - c0) / calls


async def measure(sampler: str, seconds: float) -> dict[str, Any]:
    from core import Engine, EngineConfig
    from core.resources import PsutilSampler

    cfg = EngineConfig(max_concurrency=4, resource_sampler=trivial_sampler if sampler == "trivial" else None)
    out: dict[str, Any] = {"sampler": sampler}
    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "sampler.db"), cfg)
        await eng.start()
        await asyncio.sleep(1.5)  # settle: the start's writes, the first sample
        samples0 = eng._io.samples
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        out.update(cpu_percent=100 * (cpu1 - cpu0) / (wall1 - wall0), wall_s=wall1 - wall0,
                   samples=eng._io.samples - samples0)  # fmt: skip
        if sampler == "psutil":
            out["psutil_call_us"] = per_call_us(PsutilSampler(), CALLS)
            out["engine_sample_us"] = per_call_us(eng._sample, CALLS)
        await eng.stop(grace=0)
    return out


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child_result(asyncio.run(measure(args.child["sampler"], args.child["seconds"])))
        return
    seconds = IDLE_SECONDS_QUICK if args.quick else IDLE_SECONDS
    ps: list[dict[str, Any]] = []
    tr: list[dict[str, Any]] = []
    for i in range(args.runs):
        ps.append(run_child(MODULE, {"sampler": "psutil", "seconds": seconds}))
        tr.append(run_child(MODULE, {"sampler": "trivial", "seconds": seconds}))
        note(f"sampler run {i + 1}/{args.runs}: psutil {ps[-1]} | trivial {tr[-1]}")
    diffs = [a["cpu_percent"] - b["cpu_percent"] for a, b in zip(ps, tr, strict=True)]
    call_us = median([r["psutil_call_us"] for r in ps])
    sample_us = median([r["engine_sample_us"] for r in ps])
    figures: dict[str, Any] = {
        "idle_seconds": seconds,
        "interval_s": 1.0,
        "idle_cpu_percent_psutil": rnd(median([r["cpu_percent"] for r in ps]), 3),
        "idle_cpu_percent_trivial": rnd(median([r["cpu_percent"] for r in tr]), 3),
        "idle_difference_percent": rnd(median(diffs), 3),
        "samples_in_window": ps[-1]["samples"],
        "psutil_call_us": rnd(call_us),
        "engine_sample_us": rnd(sample_us),
        # one call a second: µs per call / 1e6 s * 100 %
        "psutil_call_percent_at_1hz": rnd(call_us / 1e4, 4),
        "engine_sample_percent_at_1hz": rnd(sample_us / 1e4, 4),
        "samples_idle_difference_percent": [rnd(x, 3) for x in diffs],
    }
    targets = {
        "engine_sample_percent_at_1hz": target(figures["engine_sample_percent_at_1hz"], "<=", 0.5, unit="%"),
        "idle_difference_percent": target(figures["idle_difference_percent"], "<=", 0.5, unit="%"),
    }
    emit("sampler", figures, targets, args)


if __name__ == "__main__":
    main()
