"""Memory after work: RSS of a fresh process after running 100,000 no-op tasks submitted
with submit_many in batches of 10,000 (while the engine runs). Target: < 150 MB.
Also reported: RSS after opening the engine, and the peak (ru_maxrss)."""

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
MODULE = "tests.bench.bench_memory"


async def measure(n: int) -> dict[str, Any]:
    from core import Engine, EngineConfig, Submission

    out: dict[str, Any] = {}
    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "memory.db"), EngineConfig(max_concurrency=4))
        eng.register("noop", noop)
        await eng.start()
        gc.collect()
        out["rss_open_mb"] = rss_mb()
        ids: list[int] = []
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            res = await eng.submit_many(
                [Submission("noop", {"i": i}) for i in range(start, min(n, start + BATCH))]
            )
            ids.extend(r.id for r in res)
        await wait_all(eng, ids)
        out["run_s"] = time.perf_counter() - t0
        await asyncio.sleep(0.5)  # let retention's paced pruning catch up a little
        gc.collect()
        out["rss_after_mb"] = rss_mb()
        out["peak_rss_mb"] = peak_rss_mb()
        out["counts"] = {k: v for k, v in eng.counts().items() if v}
        await eng.stop(grace=0)
    return out


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child_result(asyncio.run(measure(args.child["n"])))
        return
    n = N_QUICK if args.quick else N
    runs = []
    for i in range(args.runs):
        runs.append(run_child(MODULE, {"n": n}))
        note(f"memory run {i + 1}/{args.runs}: {runs[-1]}")
    figures: dict[str, Any] = {
        "n": n,
        "rss_after_mb": rnd(median([r["rss_after_mb"] for r in runs])),
        "rss_open_mb": rnd(median([r["rss_open_mb"] for r in runs])),
        "peak_rss_mb": rnd(median([r["peak_rss_mb"] for r in runs])),
        "run_tps": rnd(n / median([r["run_s"] for r in runs])),
        "history_rows": runs[-1]["counts"].get("completed"),
        "samples_rss_after_mb": [rnd(r["rss_after_mb"]) for r in runs],
    }
    targets = {"rss_after_mb": target(figures["rss_after_mb"], "<=", 150, unit=" MB")}
    emit("memory", figures, targets, args)


if __name__ == "__main__":
    main()
