"""Dispatch cost of the resource gates (SPEC §4.1, §4.3): every gate on vs none, and
refused backlogs that must not slow dispatch.

The measured part: N no-op tasks submitted with one `submit_many`, then waited for;
tasks/s from the submit to the last completion (max_concurrency 4). Scenarios, each run
of all of them interleaved (plain, gated, rate_backlog, ..., plain, gated, ...), medians:

- plain:        EngineConfig(max_concurrency=4), nothing else (the e2e setting);
- gated:        every gate on but none refusing: an injected resource sampler (constant,
                modest rates), io_capacity, a pressure source returning 0.1, rate limits
                kind:other (1e-6/s, burst 1: nothing of that kind runs here),
                group:g1 and kind:noop (1e9/s), five groups g0..g4 with a limit of 2
                each, and the measured tasks spread round-robin over the groups, each with
                an IoBudget (1 KB/s disk read and network in). Target gated/plain >= 0.8;
- rate_backlog: gated, plus 100,000 pending kind "other" tasks at Priority.HIGH (ahead
                of the NORMAL measured tasks), refused by the kind:other rate limit (its
                one-token burst went to the first). Target rate_backlog/gated >= 0.8;
- io_backlog:   gated, plus 100,000 pending kind "heavy" tasks at Priority.HIGH with an
                IoBudget of 60 MB/s disk write against a 100 MB/s capacity: the first one
                runs and holds (the "at least one per resource" rule), the rest are
                refused for IO headroom. The holder takes a slot, so this scenario runs
                max_concurrency 5 (the measured tasks still get 4), as bench_backlog's
                group_full does. Target io_backlog/gated >= 0.8;
- io_distinct_backlog: io_backlog, but each backlog task declares a budget of its own
                (60 MB/s + i B/s, as budgets sized by each task's input would): a lane
                each, so it shows whether refused lanes are skipped without visiting
                them. Target io_distinct_backlog/gated >= 0.8.

A scenario still running after 20 s of measurement (5 s with --quick) stops there and
reports what it finished (tasks/s over that time; "capped" in the JSON).

The backlogs are created (engine held) before timing starts; the engine then waits
until the first resource sample was taken (pressure 0.1 is in effect) in every scenario.
Aging is on (its defaults) in every gated scenario.
`--profile` prints cProfile's top 25 (by tottime) of each scenario's measured phase to
stderr first.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from tests.bench.common import (
    emit,
    median,
    note,
    parse_args,
    ratio,
    rnd,
    target,
    temp_dir,
    wait_all,
)

N = 20_000
N_QUICK = 2_000
BACKLOG = 100_000
BACKLOG_QUICK = 20_000
BACKLOGS = ("rate_backlog", "io_backlog", "io_distinct_backlog")
SCENARIOS = ("plain", "gated", *BACKLOGS)
GROUPS = tuple(f"g{k}" for k in range(5))
GROUP_LIMIT = 2
RATES = {"disk_read": 1e6, "disk_write": 1e6, "net_rx": 1e5, "net_tx": 1e5}  # what the sampler says
CAPACITY = {"disk_read": 100e6, "disk_write": 100e6, "net_rx": 10e6, "net_tx": 10e6}
SETTLE = 1.2  # seconds after start: the first resource sample (1 s) is in
CAP = 20.0  # seconds: a scenario that has not finished by then reports what it did
CAP_QUICK = 5.0


def sampler() -> dict[str, float]:
    return dict(RATES)


def bench_pressure() -> float:
    return 0.1


def aging_option() -> tuple[dict[str, Any], str]:
    """Aging as a user would turn it on (the defaults: grace 300 s, a step a minute)."""
    from core import Aging

    value = Aging()
    return {"aging": value}, repr(value)


async def scenario(
    name: str, n: int, backlog: int, info: dict[str, Any], prof: Any = None, cap: float = 600
) -> float:
    from core import Engine, EngineConfig, IoBudget, Priority, Submission

    done = 0
    all_done = asyncio.Event()
    holding = asyncio.Event()

    async def count(ctx: Any, payload: Any) -> None:
        nonlocal done
        done += 1
        if done == n:
            all_done.set()

    async def hold(ctx: Any, payload: Any) -> None:
        holding.set()
        await asyncio.sleep(3600)

    gated = name != "plain"
    kwargs: dict[str, Any] = {"max_concurrency": 5 if name.startswith("io_") else 4}
    if gated:
        kwargs.update(resource_sampler=sampler, io_capacity=CAPACITY, pressure_sources=(bench_pressure,))
        aging, info["aging"] = aging_option()
        kwargs.update(aging)
    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "gates.db"), EngineConfig(**kwargs))
        eng.register("noop", count)
        eng.register("other", count)
        eng.register("heavy", hold)
        await eng.start()
        t_setup = time.perf_counter()
        if gated:
            await eng.set_rate_limit("kind:other", 1e-6, burst=1)
            await eng.set_rate_limit("group:g1", 1e9)
            await eng.set_rate_limit("kind:noop", 1e9)
            for g in GROUPS:
                await eng.set_group_limit(g, GROUP_LIMIT)
        await eng.hold()
        if name == "rate_backlog":
            await eng.submit_many([Submission("other", i, priority=Priority.HIGH) for i in range(backlog)])
        elif name == "io_backlog":
            heavy = IoBudget(disk_write=0.6 * CAPACITY["disk_write"])
            await eng.submit_many(
                [Submission("heavy", i, priority=Priority.HIGH, io=heavy) for i in range(backlog)]
            )
        elif name == "io_distinct_backlog":  # the same, each with a budget of its own (+i B/s)
            await eng.submit_many(
                [Submission("heavy", i, priority=Priority.HIGH,
                            io=IoBudget(disk_write=0.6 * CAPACITY["disk_write"] + i))
                 for i in range(backlog)]
            )  # fmt: skip
        await eng.release()
        if name.startswith("io_"):
            await asyncio.wait_for(holding.wait(), 60)
        info["setup_s"] = time.perf_counter() - t_setup
        await asyncio.sleep(SETTLE)
        for _ in range(600):  # a slow dispatch may hold the loop past the first sample
            if not gated or eng.pressure[0] == bench_pressure():
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"pressure not in effect: {eng.pressure}")
        if name == "rate_backlog":
            done = 0  # the one "other" task the burst let through
        pending_before = eng.counts()["pending"]
        info["lanes_before"] = len(eng._ready._lanes)
        io = IoBudget(disk_read=1000, net_rx=1000)
        subs = (
            [Submission("noop", i, group=GROUPS[i % len(GROUPS)], io=io) for i in range(n)]
            if gated
            else [Submission("noop", i) for i in range(n)]
        )
        if prof is not None:
            prof.enable()
        t0 = time.perf_counter()
        ids = [r.id for r in await eng.submit_many(subs)]
        t_submitted = time.perf_counter()
        try:
            await asyncio.wait_for(all_done.wait(), cap)
            await wait_all(eng, ids)
        except TimeoutError:
            info["capped_after_s"] = cap
        finished = done
        elapsed = time.perf_counter() - t0
        if prof is not None:
            prof.disable()
        if finished == n:
            left = [t for t in eng._tasks.values() if t.kind == "noop"]
            if left:
                raise RuntimeError(f"{len(left)} measured tasks still active after the last one ended")
        info["finished"] = finished
        info["submit_s"] = t_submitted - t0
        info["run_tps"] = finished / (elapsed - info["submit_s"])
        info["backlog_pending"] = pending_before
        info["backlog_left"] = sum(
            1 for t in eng._tasks.values() if t.kind != "noop" and t.state == "pending"
        )
        info["refusals"] = sorted({why.split(":")[0] for why in eng._refusals.values()})
        await eng.stop(grace=0)
    return finished / elapsed


def profile(n: int, backlog: int, cap: float) -> None:
    """cProfile's top 25 (by tottime) of the measured phase of each scenario, to stderr."""
    import cProfile
    import io
    import pstats

    for s in SCENARIOS:
        prof = cProfile.Profile()
        tps = asyncio.run(scenario(s, n, backlog, {}, prof, cap))
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(f"--- cProfile of the measured phase of {s} (n={n}, {tps:.0f} tasks/s under the profiler)",
              file=sys.stderr)  # fmt: skip
        print(out.getvalue(), file=sys.stderr)


def main() -> None:
    args = parse_args([a for a in sys.argv[1:] if a != "--profile"])
    n = N_QUICK if args.quick else N
    backlog = BACKLOG_QUICK if args.quick else BACKLOG
    cap = CAP_QUICK if args.quick else CAP
    if "--profile" in sys.argv:
        profile(n, backlog, cap)
    tps: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    run_tps: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    infos: dict[str, dict[str, Any]] = {}
    for i in range(args.runs):
        for s in SCENARIOS:
            info: dict[str, Any] = {}
            tps[s].append(asyncio.run(scenario(s, n, backlog, info, cap=cap)))
            run_tps[s].append(info["run_tps"])
            infos[s] = info
            note(f"gates run {i + 1}/{args.runs} {s}: {tps[s][-1]:.0f} tasks/s {info}")
    m = {s: median(v) for s, v in tps.items()}
    mr = {s: median(v) for s, v in run_tps.items()}
    aging = infos["gated"].get("aging")
    figures: dict[str, Any] = {"n": n, "backlog": backlog, "aging": aging is not None, "aging_value": aging}
    for s in SCENARIOS:
        figures[f"{s}_tps"] = rnd(m[s])
    pairs = {"gated_vs_plain": ("gated", "plain")}
    pairs.update({f"{s}_vs_gated": (s, "gated") for s in BACKLOGS})
    for key, (a, b) in pairs.items():
        figures[f"ratio_{key}"] = ratio(m[a], m[b])
    # The same from submit_many's return to the last completion (the insert left out).
    figures["run_phase_tps"] = {s: rnd(mr[s]) for s in SCENARIOS}
    figures["run_phase_ratio_gated_vs_plain"] = ratio(mr["gated"], mr["plain"])
    figures["capped"] = {s: f"{infos[s]['finished']} of {n} in {cap:g} s" for s in SCENARIOS
                         if "capped_after_s" in infos[s]}  # fmt: skip
    figures["last_run"] = {
        s: {k: (rnd(v) if isinstance(v, float) else v) for k, v in infos[s].items() if k != "aging"}
        for s in SCENARIOS
    }
    figures["ratio_samples"] = {
        key: [round(x / y, 3) for x, y in zip(tps[a], tps[b], strict=True)] for key, (a, b) in pairs.items()
    }
    figures["samples"] = {s: [round(x) for x in v] for s, v in tps.items()}
    targets = {key: target(figures[f"ratio_{key}"], ">=", 0.8, unit="x") for key in pairs}
    emit("gates", figures, targets, args)


if __name__ == "__main__":
    main()
