"""E2E throughput: N no-op tasks submitted one `await submit` at a time while the engine
runs them at max_concurrency 4; tasks/s from the first submit to the last completion.

Peers in the same run: huey's SqliteHuey (4 consumer threads, huey's own durability) and
the bare sqlite3 loop (insert/claim/complete, a transaction each) at Taskdeck's durability.
Targets (issue #3): NORMAL >= 5x huey and >= 1.0x bare (floor 0.8x); FULL >= 3x huey
(floor 2x). `--profile` prints cProfile's top 25 (by tottime) of one NORMAL run to stderr.

Also reported (not targets): the same with the submitter yielding to the loop after each
submit (`await asyncio.sleep(0)`), i.e. submitting and running genuinely interleaved; and
the store alone, Taskdeck's statements for each lifecycle replayed with no engine around
them (`peers.store_statements_lifecycles`), beside the bare loop: how much of the gap to
the bare loop is the store and how much the Python engine. And, from one more NORMAL run
with every statement on the loop thread timed, the microseconds per task spent inside
SQLite there beside the bare loop's whole lifecycle: what the store leaves for Python.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time
from typing import Any

from tests.bench import peers
from tests.bench.common import (
    active_counts,
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

N = 20_000
N_QUICK = 2_000


async def taskdeck_e2e(n: int, synchronous: str = "NORMAL", yield_each: bool = False,
                       stats: dict[str, Any] | None = None, timed: bool = False) -> float:  # fmt: skip
    from core import Engine, EngineConfig

    with temp_dir() as d:
        eng = await Engine.open(
            os.path.join(d, "e2e.db"), EngineConfig(max_concurrency=4, synchronous=synchronous)
        )
        eng.register("noop", noop)
        await eng.start()
        ids: list[int] = []
        if timed:  # count what the run itself executes, not what opening the engine did
            _TimedConnection.seconds, _TimedConnection.calls = 0.0, 0
        t0 = time.perf_counter()
        for _ in range(n):
            ids.append((await eng.submit("noop")).id)
            if yield_each:
                await asyncio.sleep(0)
        t_submitted = time.perf_counter()
        await wait_all(eng, ids)
        elapsed = time.perf_counter() - t0
        if timed:
            timed_sql = _TimedConnection.seconds, _TimedConnection.calls
        left = active_counts(eng)
        if left:
            raise RuntimeError(f"tasks still active after the last one ended: {left}")
        if stats is not None:
            stats["submit_phase_s"] = t_submitted - t0
            stats["commits"] = eng._db.writer.commits
        await eng.stop(grace=0)
    if timed:
        _TimedConnection.seconds, _TimedConnection.calls = timed_sql
    return n / elapsed


class _TimedConnection(sqlite3.Connection):
    """A connection that adds the time its `execute` calls on the loop thread take."""

    loop_thread = 0
    seconds = 0.0
    calls = 0

    def execute(self, *args: Any) -> sqlite3.Cursor:
        if threading.get_ident() != _TimedConnection.loop_thread:
            return super().execute(*args)
        t = time.perf_counter()
        try:
            return super().execute(*args)
        finally:
            _TimedConnection.seconds += time.perf_counter() - t
            _TimedConnection.calls += 1


def sql_on_loop(n: int) -> tuple[float, float]:
    """One NORMAL run with every statement the engine runs on the loop thread timed: the
    microseconds per task spent inside SQLite there, and statements per task. Set against
    the bare loop's whole lifecycle it shows what is left for the Python engine."""
    connect = sqlite3.connect

    def timed(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", _TimedConnection)
        return connect(*args, **kwargs)

    _TimedConnection.loop_thread = threading.get_ident()
    _TimedConnection.seconds, _TimedConnection.calls = 0.0, 0
    sqlite3.connect = timed  # type: ignore[assignment]
    try:
        asyncio.run(taskdeck_e2e(n, "NORMAL", timed=True))
    finally:
        sqlite3.connect = connect  # type: ignore[assignment]
    return _TimedConnection.seconds * 1e6 / n, _TimedConnection.calls / n


def profile(n: int) -> None:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    tps = asyncio.run(taskdeck_e2e(n))
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    print(f"--- cProfile of one Taskdeck e2e run (NORMAL, n={n}, {tps:.0f} tasks/s under the profiler)",
          file=sys.stderr)  # fmt: skip
    print(out.getvalue(), file=sys.stderr)


def main() -> None:
    args = parse_args([a for a in sys.argv[1:] if a != "--profile"])
    n = N_QUICK if args.quick else N
    if "--profile" in sys.argv:
        profile(n)
    td_n, td_f, td_y, bare_n, bare_f, hy, store_n = [], [], [], [], [], [], []
    sql_us, statements = [], []
    stats_n: dict[str, Any] = {}
    stats_f: dict[str, Any] = {}
    for i in range(args.runs):
        td_n.append(asyncio.run(taskdeck_e2e(n, "NORMAL", stats=stats_n)))
        bare_n.append(peers.bare_sqlite_lifecycles(n, "NORMAL"))
        td_f.append(asyncio.run(taskdeck_e2e(n, "FULL", stats=stats_f)))
        bare_f.append(peers.bare_sqlite_lifecycles(n, "FULL"))
        td_y.append(asyncio.run(taskdeck_e2e(n, "NORMAL", yield_each=True)))
        hy.append(peers.huey_e2e(n))
        store_n.append(peers.store_statements_lifecycles(n, "NORMAL"))
        us, per_task = sql_on_loop(n)
        sql_us.append(us)
        statements.append(per_task)

        note(f"e2e run {i + 1}/{args.runs}: taskdeck NORMAL {td_n[-1]:.0f}/s FULL {td_f[-1]:.0f}/s "
             f"yielding {td_y[-1]:.0f}/s | bare NORMAL {bare_n[-1]:.0f}/s FULL {bare_f[-1]:.0f}/s "
             f"| huey {hy[-1]:.0f}/s | store alone {store_n[-1]:.0f}/s")  # fmt: skip
    series = {"taskdeck_normal": td_n, "taskdeck_full": td_f, "taskdeck_yielding": td_y,
              "bare_normal": bare_n, "bare_full": bare_f, "huey": hy, "store_alone_normal": store_n}  # fmt: skip
    m = {"td_n": median(td_n), "td_f": median(td_f), "td_y": median(td_y),
         "bare_n": median(bare_n), "bare_f": median(bare_f), "hy": median(hy), "store_n": median(store_n)}  # fmt: skip
    figures: dict[str, Any] = {
        "n": n,
        "taskdeck_normal_tps": rnd(m["td_n"]),
        "huey_tps": rnd(m["hy"]),
        "bare_normal_tps": rnd(m["bare_n"]),
        "ratio_normal_vs_huey": ratio(m["td_n"], m["hy"]),
        "ratio_normal_vs_bare": ratio(m["td_n"], m["bare_n"]),
        "taskdeck_full_tps": rnd(m["td_f"]),
        "bare_full_tps": rnd(m["bare_f"]),
        "ratio_full_vs_huey": ratio(m["td_f"], m["hy"]),
        "ratio_full_vs_bare": ratio(m["td_f"], m["bare_f"]),
        "taskdeck_normal_yielding_tps": rnd(m["td_y"]),
        "ratio_yielding_vs_huey": ratio(m["td_y"], m["hy"]),
        "store_alone_normal_tps": rnd(m["store_n"]),
        "ratio_store_alone_vs_bare": ratio(m["store_n"], m["bare_n"]),
        "ratio_normal_vs_store_alone": ratio(m["td_n"], m["store_n"]),
        "sql_on_loop_us_per_task": rnd(median(sql_us)),
        "statements_on_loop_per_task": rnd(median(statements)),
        "bare_us_per_lifecycle": rnd(1e6 / m["bare_n"]),
        "ratio_sql_on_loop_vs_bare_lifecycle": ratio(median(sql_us), 1e6 / m["bare_n"]),
        "normal_submit_phase_s": rnd(stats_n.get("submit_phase_s")),
        "normal_commits": stats_n.get("commits"),
        "full_commits": stats_f.get("commits"),
        "huey_setting": "SqliteHuey defaults (WAL, synchronous=FULL), 4 consumer threads",
        "ratio_samples": {
            "normal_vs_huey": [round(a / b, 3) for a, b in zip(td_n, hy, strict=True)],
            "normal_vs_bare": [round(a / b, 3) for a, b in zip(td_n, bare_n, strict=True)],
            "full_vs_huey": [round(a / b, 3) for a, b in zip(td_f, hy, strict=True)],
        },
        "samples": {k: [round(x) for x in v] for k, v in series.items()},
    }  # fmt: skip
    targets = {
        "normal_vs_huey": target(figures["ratio_normal_vs_huey"], ">=", 5, unit="x"),
        "normal_vs_bare": target(figures["ratio_normal_vs_bare"], ">=", 1.0, floor=0.8, unit="x"),
        "full_vs_huey": target(figures["ratio_full_vs_huey"], ">=", 3, floor=2, unit="x"),
    }
    emit("e2e", figures, targets, args)


if __name__ == "__main__":
    main()
