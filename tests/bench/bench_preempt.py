"""Preemption latency (SPEC §4.2): how long a CRITICAL task waits for a slot beyond the
time its victim takes to stop cooperatively.

EngineConfig(max_concurrency=4, preempt_grace=5), the real clock, a database file in a
temporary directory. Four LOW tasks run handlers that loop on short cooperative work
(`await ctx.yield_point()`, a few µs of work, `await asyncio.sleep(0)`); when one sees
Interrupted it records the moment and re-raises (the run ends paused(preempted)). Each
sample: all four LOW handlers running, then `await submit(CRITICAL)`; from just before
the submit (time.perf_counter()):

- start:  to the CRITICAL handler's first line;
- stop:   to the first victim's `except Interrupted` (its cooperative stop);
- beyond: start - stop, what the engine adds after the victim returned (ending the
          victim's run, dispatch, the claim's commit, starting the handler).

p50/p99 over 200 samples (30 with --quick); the median of the runs' percentiles.
Target: p99 of `beyond` <= 50 ms. Reference in the same run (no target): submit -> start
of a CRITICAL task while a slot is free (three LOW tasks running).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from typing import Any

from tests.bench.common import emit, median, note, parse_args, percentile, target, temp_dir

SAMPLES = 200
SAMPLES_QUICK = 30
CONCURRENCY = 4
GRACE = 5.0
TIMEOUT = 30.0


def ms(x: float) -> float:
    return round(x * 1000, 3)


class Lows:
    """The LOW tasks' handler and what it reports: how many run, when one stopped."""

    def __init__(self) -> None:
        self.running = 0
        self.want = CONCURRENCY
        self.all_running = asyncio.Event()
        self.stops: list[float] = []  # perf_counter of each `except Interrupted`
        self.finish = False  # the handlers return at their next step
        self.steps = 0

    async def handler(self, ctx: Any, payload: Any) -> None:
        from core import Interrupted

        self.running += 1
        if self.running >= self.want:
            self.all_running.set()
        try:
            while not self.finish:
                await ctx.yield_point()
                sum(range(50))  # a few µs of work between yields
                self.steps += 1
                await asyncio.sleep(0)
        except Interrupted:
            self.stops.append(time.perf_counter())
            raise
        finally:
            self.running -= 1
            if self.running < self.want:
                self.all_running.clear()


async def measure(samples: int) -> dict[str, Any]:
    from core import Engine, EngineConfig, Priority, Submission

    lows = Lows()
    crit_started: dict[int, float] = {}

    async def critical(ctx: Any, payload: Any) -> None:
        crit_started[payload] = time.perf_counter()

    start: list[float] = []
    stop: list[float] = []
    beyond: list[float] = []
    free: list[float] = []
    victims: list[int] = []
    with temp_dir() as d:
        path = os.path.join(d, "preempt.db")
        eng = await Engine.open(path, EngineConfig(max_concurrency=CONCURRENCY, preempt_grace=GRACE))
        eng.register("low", lows.handler, priority=Priority.LOW)
        eng.register("critical", critical, priority=Priority.CRITICAL)
        await eng.start()

        # Preemption: four LOW tasks hold every slot; each CRITICAL task takes one of them.
        low_ids = [r.id for r in await eng.submit_many([Submission("low", i) for i in range(CONCURRENCY)])]
        for i in range(samples):
            await asyncio.wait_for(lows.all_running.wait(), TIMEOUT)  # the victim resumed
            await asyncio.sleep(0.002)
            n_stops = len(lows.stops)
            t0 = time.perf_counter()
            res = await eng.submit("critical", i)
            await eng.wait(res.id, timeout=TIMEOUT)
            new_stops = lows.stops[n_stops:]
            if i not in crit_started or not new_stops:
                raise RuntimeError(f"sample {i}: no victim stopped ({new_stops}) or no start")
            victims.append(len(new_stops))
            start.append(crit_started[i] - t0)
            stop.append(new_stops[0] - t0)
            beyond.append(crit_started[i] - new_stops[0])
        # Reference: a free slot (three LOW tasks running), nothing to preempt.
        lows.finish = True
        for task_id in low_ids:
            await eng.wait(task_id, timeout=TIMEOUT)
        lows.finish = False
        lows.want = CONCURRENCY - 1
        await eng.submit_many([Submission("low", i) for i in range(CONCURRENCY - 1)])
        await asyncio.wait_for(lows.all_running.wait(), TIMEOUT)
        for i in range(samples, 2 * samples):
            await asyncio.sleep(0.002)
            t0 = time.perf_counter()
            res = await eng.submit("critical", i)
            await eng.wait(res.id, timeout=TIMEOUT)
            free.append(crit_started[i] - t0)
        steps = lows.steps
        lows.finish = True
        await eng.stop(grace=1)
        conn = sqlite3.connect(path)
        events = dict(
            conn.execute(
                "SELECT kind, count(*) FROM events WHERE kind IN ('preempted', 'resumed') GROUP BY kind"
            ).fetchall()
        )
        conn.close()
    return {
        "start_p50": percentile(start, 50), "start_p99": percentile(start, 99), "start_max": max(start),
        "stop_p50": percentile(stop, 50), "stop_p99": percentile(stop, 99), "stop_max": max(stop),
        "beyond_p50": percentile(beyond, 50), "beyond_p99": percentile(beyond, 99),
        "beyond_max": max(beyond),
        "free_slot_start_p50": percentile(free, 50), "free_slot_start_p99": percentile(free, 99),
        "victims_max": max(victims), "preempted_events": events.get("preempted", 0),
        "resumed_events": events.get("resumed", 0), "low_steps": steps,
    }  # fmt: skip


def main() -> None:
    args = parse_args()
    samples = SAMPLES_QUICK if args.quick else SAMPLES
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        runs.append(asyncio.run(measure(samples)))
        note(f"preempt run {i + 1}/{args.runs}: "
             + ", ".join(f"{k} {ms(v) if isinstance(v, float) else v}" for k, v in runs[-1].items()))  # fmt: skip
    timed = [k for k, v in runs[0].items() if isinstance(v, float)]
    figures: dict[str, Any] = {"samples": samples, "max_concurrency": CONCURRENCY, "preempt_grace_s": GRACE}
    figures.update({f"{k}_ms": ms(median([r[k] for r in runs])) for k in timed})
    figures["victims_per_sample_max"] = max(r["victims_max"] for r in runs)
    figures["preempted_events_last_run"] = runs[-1]["preempted_events"]
    figures["resumed_events_last_run"] = runs[-1]["resumed_events"]
    figures["samples_beyond_p99_ms"] = [ms(r["beyond_p99"]) for r in runs]
    targets = {
        "beyond_victim_stop_p99_ms": target(figures["beyond_p99_ms"], "<=", 50, unit=" ms"),
    }
    emit("preempt", figures, targets, args)


if __name__ == "__main__":
    main()
