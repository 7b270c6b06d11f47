"""A subscriber that reads nothing while 100,000 no-op tasks run costs bounded memory
(SPEC §3.6), then receives every lifecycle event in order.

Each run is a fresh process: warm up with 2,000 tasks, create the subscriber
(`eng.events()`), gc.collect() and read RSS, run 100,000 no-op tasks in waves (submit_many
of 10,000, wait for them, next wave: the pending set stays small, so the growth is the
subscriber's and history's, not a 100k-task queue's), gc.collect() and read RSS again; then
read the subscriber until it has seen a `completed` event for each of the 100,000 tasks
(or 10 s pass without an event), checking that seq strictly increases.
Targets: RSS growth < 20 MB; every completed event received (count == N) in seq order.

Beside them, in the same run: the growth of the same run without a subscriber (the
engine's own), and the events received with history retention off (retention_keep=None,
retention_days=None): with the default retention (10,000 terminal tasks) pruning deletes
the events of pruned tasks from the log, so a subscriber that lagged behind them cannot
page them back in.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from tests.bench.common import (
    child_result,
    emit,
    median,
    noop,
    note,
    parse_args,
    peak_rss_mb,
    rnd,
    rss_mb,
    run_child,
    target,
    temp_dir,
    wait_all,
)

N = 100_000
N_QUICK = 10_000
BATCH = 10_000
WARMUP = 2_000
MODULE = "tests.bench.bench_subscriber"


async def measure(n: int, subscribe: bool, keep_history: bool = False) -> dict[str, Any]:
    from core import Engine, EngineConfig, EventKind, Submission

    out: dict[str, Any] = {}
    with temp_dir() as d:
        config = EngineConfig(max_concurrency=4)
        if keep_history:
            config = EngineConfig(max_concurrency=4, retention_keep=None, retention_days=None)
        eng = await Engine.open(os.path.join(d, "sub.db"), config)
        eng.register("noop", noop)
        await eng.start()
        res = await eng.submit_many([Submission("noop", i) for i in range(WARMUP)])
        await wait_all(eng, [r.id for r in res])
        it = eng.events() if subscribe else None
        gc.collect()
        rss0 = rss_mb()
        ids: list[int] = []
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            res = await eng.submit_many([Submission("noop", i) for i in range(start, min(n, start + BATCH))])
            wave = [r.id for r in res]
            await wait_all(eng, wave)
            ids.extend(wave)
        out["run_s"] = time.perf_counter() - t0
        gc.collect()
        rss1 = rss_mb()
        out.update(rss_before_mb=rss0, rss_after_mb=rss1, growth_mb=rss1 - rss0, peak_rss_mb=peak_rss_mb())
        if it is not None:
            wanted = set(ids)
            completed = 0
            events = 0
            last_seq = -1
            in_order = True
            t1 = time.perf_counter()
            deadline = t1 + 300
            while completed < n and time.perf_counter() < deadline:
                try:
                    ev = await asyncio.wait_for(anext(it), 10)
                except (TimeoutError, StopAsyncIteration):
                    break
                if ev.seq is None:
                    continue
                events += 1
                if ev.seq <= last_seq:
                    in_order = False
                last_seq = ev.seq
                if ev.kind == EventKind.COMPLETED and ev.task_id in wanted:
                    completed += 1
            out.update(events_read=events, completed_events=completed, seq_increasing=in_order,
                       catch_up_s=time.perf_counter() - t1)  # fmt: skip
        out["counts"] = {k: v for k, v in eng.counts().items() if v}
        await eng.stop(grace=0)
    return out


def main() -> None:
    args = parse_args()
    if args.child is not None:
        c = args.child
        child_result(asyncio.run(measure(c["n"], c["subscribe"], c.get("keep_history", False))))
        return
    n = N_QUICK if args.quick else N
    with_sub, without, kept = [], [], []
    for i in range(args.runs):
        with_sub.append(run_child(MODULE, {"n": n, "subscribe": True}))
        without.append(run_child(MODULE, {"n": n, "subscribe": False}))
        kept.append(run_child(MODULE, {"n": n, "subscribe": True, "keep_history": True}))
        note(f"subscriber run {i + 1}/{args.runs}: with {with_sub[-1]} | without {without[-1]} "
             f"| retention off {kept[-1]}")  # fmt: skip
    growth = median([r["growth_mb"] for r in with_sub])
    base = median([r["growth_mb"] for r in without])
    completed = min(r["completed_events"] for r in with_sub)
    in_order = all(r["seq_increasing"] for r in with_sub)
    figures: dict[str, Any] = {
        "n": n,
        "rss_growth_mb": rnd(growth),
        "rss_growth_without_subscriber_mb": rnd(base),
        "subscriber_cost_mb": rnd(growth - base),
        "rss_after_mb": rnd(median([r["rss_after_mb"] for r in with_sub])),
        "completed_events_received": completed,
        "events_read": median([r["events_read"] for r in with_sub]),
        "seq_strictly_increasing": in_order,
        "catch_up_s": rnd(median([r["catch_up_s"] for r in with_sub]), 3),
        "retention_off_completed_events_received": min(r["completed_events"] for r in kept),
        "retention_off_seq_strictly_increasing": all(r["seq_increasing"] for r in kept),
        "retention_off_rss_growth_mb": rnd(median([r["growth_mb"] for r in kept])),
        "retention_off_catch_up_s": rnd(median([r["catch_up_s"] for r in kept]), 3),
        "run_s": rnd(median([r["run_s"] for r in with_sub]), 3),
        "samples_growth_mb": [rnd(r["growth_mb"]) for r in with_sub],
    }
    targets = {
        "rss_growth_mb": target(figures["rss_growth_mb"], "<=", 20, unit=" MB"),
        "completed_events_received": target(completed if in_order else 0, ">=", n),
    }
    emit("subscriber", figures, targets, args)


if __name__ == "__main__":
    main()
