"""Batch submit: `submit_many` of 100,000 no-op tasks into an open (not started) engine,
against a bare sqlite3 `executemany` of the same number of rows in one transaction.
Target (issue #3): Taskdeck rows/s >= 0.5x the bare executemany.

Also reported (not a target): the schema alone, the same rows and their events written
straight into Taskdeck's tables (`peers.schema_executemany`): the share of the gap to the
bare executemany that is SQL, not the engine."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from tests.bench import peers
from tests.bench.common import emit, median, noop, note, parse_args, ratio, rnd, target, temp_dir

N = 100_000
N_QUICK = 10_000


async def taskdeck_batch(n: int) -> float:
    from core import Engine, EngineConfig, Submission

    with temp_dir() as d:
        eng = await Engine.open(os.path.join(d, "batch.db"), EngineConfig(max_concurrency=4))
        eng.register("noop", noop)
        subs = [Submission("noop", {"i": i}) for i in range(n)]
        t0 = time.perf_counter()
        res = await eng.submit_many(subs)
        elapsed = time.perf_counter() - t0
        if len(res) != n or eng.counts()["pending"] != n:
            raise RuntimeError(f"submit_many inserted {len(res)} results, {eng.counts()['pending']} pending")
        await eng.stop(grace=0)
    return n / elapsed


def main() -> None:
    args = parse_args()
    n = N_QUICK if args.quick else N
    td, bare, schema = [], [], []
    for i in range(args.runs):
        td.append(asyncio.run(taskdeck_batch(n)))
        bare.append(peers.bare_sqlite_executemany(n))
        schema.append(peers.schema_executemany(n))
        note(f"batch run {i + 1}/{args.runs}: taskdeck {td[-1]:.0f} rows/s, bare executemany {bare[-1]:.0f} "
             f"rows/s, schema alone {schema[-1]:.0f} rows/s")  # fmt: skip
    m_td, m_bare, m_schema = median(td), median(bare), median(schema)
    figures: dict[str, Any] = {
        "n": n,
        "taskdeck_rows_per_s": rnd(m_td),
        "bare_executemany_rows_per_s": rnd(m_bare),
        "ratio_vs_bare": ratio(m_td, m_bare),
        "schema_alone_rows_per_s": rnd(m_schema),
        "ratio_vs_schema_alone": ratio(m_td, m_schema),
        "taskdeck_seconds": rnd(n / m_td, 3),
        "samples": {
            "taskdeck": [round(x) for x in td],
            "bare": [round(x) for x in bare],
            "schema_alone": [round(x) for x in schema],
        },
    }
    emit(
        "batch", figures, {"vs_bare_executemany": target(figures["ratio_vs_bare"], ">=", 0.5, unit="x")}, args
    )


if __name__ == "__main__":
    main()
