"""Schedules (issue #5), beside APScheduler 3 measured in the same run.

- Idle: 10,000 active schedules with nothing due for 30 s (5 s with --quick): engine CPU
  < 1% of one core (each run a fresh process).
- Fire latency: 200 one-shot fires at known instants on an idle engine; lateness of each
  handler start against its instant, p50/p99, next to APScheduler's AsyncIOScheduler
  running the same job with date triggers. Target: p99 no worse than APScheduler's.
- Churn: 10,000 schedules added in one call (add_many) and in 10,000 calls (add), against
  APScheduler's add_job into its SQLAlchemy (SQLite) job store. Target: >= 10x.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.bench.common import (
    child_result,
    cpu_seconds,
    emit,
    median,
    noop,
    note,
    parse_args,
    percentile,
    ratio,
    rnd,
    run_child,
    target,
    temp_dir,
)

MODULE = "tests.bench.bench_schedules"
SCHEDULES = 10_000
FIRES = 200


async def idle(count: int, seconds: float) -> dict[str, Any]:
    from core import Engine, ScheduleSpec

    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "idle.db"))
        eng.register("noop", noop)
        await eng.start()
        await eng.schedules.add_many(
            [ScheduleSpec("noop", i, cron=f"{i % 60} 3 * * *", tz="UTC") for i in range(count)]
        )
        await asyncio.sleep(1.0)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = cpu_seconds() - cpu0
        wall = time.perf_counter() - wall0
        await eng.stop(grace=0)
    return {"cpu_percent": 100 * cpu / wall}


async def taskdeck_latency(n: int) -> list[float]:
    from core import Engine, EngineConfig

    lateness: list[float] = []
    instants: dict[int, float] = {}

    async def job(ctx: Any, payload: Any) -> None:
        lateness.append(time.time() - instants[payload])

    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "lat.db"), EngineConfig(max_concurrency=4))
        eng.register("job", job)
        await eng.start()
        base = time.time() + 0.5
        for i in range(n):
            instants[i] = base + i * 0.02
            await eng.schedules.add("job", i, at=datetime.fromtimestamp(instants[i], UTC))
        while len(lateness) < n:
            await asyncio.sleep(0.05)
        await eng.stop(grace=0)
    return lateness


async def apscheduler_latency(n: int) -> list[float]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    lateness: list[float] = []
    instants: dict[int, float] = {}

    async def job(i: int) -> None:
        lateness.append(time.time() - instants[i])

    sched = AsyncIOScheduler(timezone="UTC")
    sched.start()
    base = time.time() + 0.5
    for i in range(n):
        instants[i] = base + i * 0.02
        sched.add_job(job, "date", run_date=datetime.fromtimestamp(instants[i], UTC), args=[i])
    while len(lateness) < n:
        await asyncio.sleep(0.05)
    sched.shutdown(wait=False)
    return lateness


async def taskdeck_churn(n: int) -> tuple[float, float]:
    from core import Engine, ScheduleSpec

    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "churn.db"))
        eng.register("noop", noop)
        t0 = time.perf_counter()
        await eng.schedules.add_many([ScheduleSpec("noop", i, every=3600 + i) for i in range(n)])
        one_call = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            await eng.schedules.add("noop", i, every=3600 + i)
        many_calls = n / (time.perf_counter() - t0)
        await eng.stop(grace=0)
    return one_call, many_calls


def apscheduler_churn(n: int) -> float:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    with temp_dir() as d:
        sched = BackgroundScheduler(
            timezone="UTC", jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{d}/aps.db")}
        )
        sched.start(paused=True)
        start = datetime.now(UTC) + timedelta(hours=1)
        t0 = time.perf_counter()
        for i in range(n):
            sched.add_job(_aps_noop, "interval", seconds=3600 + i, next_run_time=start, id=f"j{i}")
        rate = n / (time.perf_counter() - t0)
        sched.shutdown(wait=False)
    return rate


def _aps_noop() -> None:
    return None


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child_result(asyncio.run(idle(args.child["count"], args.child["seconds"])))
        return
    seconds = 5.0 if args.quick else 30.0
    churn_n = 2_000 if args.quick else SCHEDULES
    aps_n = 500 if args.quick else 2_000  # APScheduler is slow; its rate does not depend on n
    idle_runs, td_lat, aps_lat, td_one, td_many, aps = [], [], [], [], [], []
    for i in range(args.runs):
        idle_runs.append(run_child(MODULE, {"count": SCHEDULES, "seconds": seconds})["cpu_percent"])
        td = asyncio.run(taskdeck_latency(FIRES))
        ap = asyncio.run(apscheduler_latency(FIRES))
        td_lat.append((percentile(td, 50) * 1000, percentile(td, 99) * 1000))
        aps_lat.append((percentile(ap, 50) * 1000, percentile(ap, 99) * 1000))
        one, many = asyncio.run(taskdeck_churn(churn_n))
        td_one.append(one)
        td_many.append(many)
        aps.append(apscheduler_churn(aps_n))
        note(
            f"schedules run {i + 1}/{args.runs}: idle {idle_runs[-1]:.2f}% cpu, p99 {td_lat[-1][1]:.2f} ms "
            f"(aps {aps_lat[-1][1]:.2f}), add {one:.0f}/s one call, {many:.0f}/s one each, aps {aps[-1]:.0f}/s"
        )
    p99, aps_p99 = median([x[1] for x in td_lat]), median([x[1] for x in aps_lat])
    figures = {
        "schedules": SCHEDULES,
        "idle_seconds": seconds,
        "idle_cpu_percent": rnd(median(idle_runs), 3),
        "fire_p50_ms": rnd(median([x[0] for x in td_lat]), 3),
        "fire_p99_ms": rnd(p99, 3),
        "apscheduler_p50_ms": rnd(median([x[0] for x in aps_lat]), 3),
        "apscheduler_p99_ms": rnd(aps_p99, 3),
        "add_many_per_s": rnd(median(td_one)),
        "add_one_each_per_s": rnd(median(td_many)),
        "apscheduler_add_job_per_s": rnd(median(aps)),
        "ratio_add_many_vs_aps": ratio(median(td_one), median(aps)),
        "ratio_add_one_each_vs_aps": ratio(median(td_many), median(aps)),
    }
    emit(
        "schedules",
        figures,
        {
            "idle_cpu_percent": target(figures["idle_cpu_percent"], "<=", 1.0, unit="%"),
            "fire_p99_vs_apscheduler": target(ratio(aps_p99, p99), ">=", 1.0, unit="x"),
            "add_many_vs_aps": target(figures["ratio_add_many_vs_aps"], ">=", 10, unit="x"),
            "add_one_each_vs_aps": target(figures["ratio_add_one_each_vs_aps"], ">=", 10, unit="x"),
        },
        args,
    )


if __name__ == "__main__":
    main()
