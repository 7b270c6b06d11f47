"""Crash soak: SIGKILL a worker under a mixed load N times, reopening after each kill.

    python -m tests.bench.crash_soak [--kills N | --quick] [--seed S] [--keep DIR]

Each cycle starts `python -m tests.crash.worker DB mixed` (single submits, submit_many
batches, step tasks that checkpoint, a flaky kind that retries, pauses and resumes of
random tasks), waits for a random number of its marker lines (so the kill lands at a
random instant of the load, commits included), waits a further random 0-50 ms, kills it
with SIGKILL, and reopens the database with Engine.open (crash recovery), checking
`PRAGMA integrity_check`, the recovery counts and that every acknowledged task exists.
One cycle in ten kills the worker right after Engine.open returned instead. At the end
an engine runs every task to a terminal state (no new submissions).

Prints ONE JSON line:
{"bench": "crash_soak", "kills": N, "acknowledged": A, "lost": L, "stuck": S,
 "integrity_failures": F, "seconds": T, ...}
lost: acknowledged tasks missing; stuck: tasks still active after the final run (both
target 0). Extra figures: recovery_problems (recovery that disagreed with the rows it
found), partial_batches (a submit_many that is neither whole nor absent), guard_failed
(tasks failed by the 3-crash guard, expected for tasks running at 3 kills in a row);
"ok" is true when lost, stuck, integrity_failures, recovery_problems and partial_batches
are all 0 (the benchmark reports; its exit status is 0 either way).
Details of any problem go to stderr and the database is kept (its path printed there).
Not collected by pytest (a benchmark, run by hand or by `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.crash.harness import (
    Markers,
    ReopenReport,
    Worker,
    WorkerFailed,
    batch_counts,
    drained,
    guard_candidates,
    integrity_check,
    reopen_and_check,
    task_states,
)

MAX_MARKERS = 300  # a cycle waits for 1..MAX_MARKERS marker lines before the kill
MAX_EXTRA_DELAY = 0.05  # then 0..50 ms more
DRAIN_TIMEOUT = 300.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def soak(kills: int, seed: int, workdir: Path, concurrency: int, verbose: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    db = workdir / "soak.db"
    acked: set[int] = set()
    announced: dict[str, int] = {}
    acked_batches: dict[str, Any] = {}
    reports: list[ReopenReport] = []
    integrity_failures = 0
    recovery_problems: list[str] = []
    lost_seen: set[int] = set()
    worker_errors = 0
    t0 = time.perf_counter()

    for k in range(kills):
        w = Worker(db, "mixed", "--seed", rng.randrange(2**31), "--tag", f"k{k}",
                   "--concurrency", concurrency, stderr_path=workdir / "worker.err")  # fmt: skip
        try:
            if rng.random() < 0.1:
                w.expect_word("OPENED", timeout=60)
            else:
                w.expect_word("READY", timeout=60)
                w.expect_lines(len(w.lines) + rng.randint(1, MAX_MARKERS), timeout=60)
            w.kill(delay=rng.uniform(0, MAX_EXTRA_DELAY))
        except WorkerFailed as e:
            worker_errors += 1
            log(f"cycle {k}: {e}")
            w.close()
            if worker_errors > 3:
                raise
        merge(w.markers, acked, announced, acked_batches)

        report = await reopen_and_check(db)
        reports.append(report)
        for problem in report.problems:
            if problem.startswith("integrity_check"):
                integrity_failures += 1
            else:
                recovery_problems.append(f"kill {k}: {problem}")
            log(f"kill {k}: {problem}")
        present = set(task_states(db))
        missing = acked - present - lost_seen
        if missing:
            lost_seen |= missing
            log(f"kill {k}: {len(missing)} acknowledged tasks missing: {sorted(missing)[:20]}")
        if verbose:
            r = report.recovery
            log(f"kill {k + 1}/{kills}: {len(w.lines)} lines, acknowledged {len(acked)}, recovered "
                f"{r.resumed} resumed {r.restarted} restarted {r.failed} failed")  # fmt: skip

    # The end: no more submissions, every task to a terminal state.
    async with drained(db, timeout=DRAIN_TIMEOUT, concurrency=8) as engine:
        states = task_states(db)
        lost = sorted(i for i in acked if engine.get(i) is None)
        still_active = sorted(
            i for i, s in states.items() if s in ("pending", "blocked", "running", "waiting", "paused")
        )
        guard_failed = sorted(
            i for i, s in states.items()
            if s == "failed" and "interrupted 3 times" in (getattr(engine.get(i), "error", "") or "")
        )  # fmt: skip
    may_fail = guard_candidates(reports)
    unexplained = [i for i in guard_failed if i not in may_fail]
    if unexplained:
        recovery_problems.append(f"failed by the crash guard without 3 kills in a row: {unexplained[:20]}")
    found = batch_counts(db)
    partial = []
    for tag, size in announced.items():
        count = found.get(tag, (0, 0, 0))[0]
        if (tag in acked_batches and count != size) or count not in (0, size):
            partial.append((tag, count, size))
    if lost:
        log(f"lost {len(lost)} acknowledged tasks: {lost[:20]}")
    if still_active:
        log(f"{len(still_active)} tasks still active after the final run: {still_active[:20]}")
    if partial:
        log(f"partial batches (tag, found, size): {partial[:20]}")
    for p in recovery_problems:
        log(p)
    status = integrity_check(db)
    if status != "ok":
        integrity_failures += 1
        log(f"integrity_check at the end: {status}")
    return {
        "bench": "crash_soak",
        "kills": kills,
        "acknowledged": len(acked),
        "lost": len(lost),
        "stuck": len(still_active),
        "integrity_failures": integrity_failures,
        "seconds": round(time.perf_counter() - t0, 1),
        "recovery_problems": len(recovery_problems),
        "partial_batches": len(partial),
        "guard_failed": len(guard_failed),
        "tasks": len(states),
        "seed": seed,
        "targets": {"lost": 0, "stuck": 0, "integrity_failures": 0},
        "ok": not (lost or still_active or integrity_failures or recovery_problems or partial),
    }


def merge(m: Markers, acked: set[int], announced: dict[str, int], acked_batches: dict[str, Any]) -> None:
    acked |= m.acked
    announced.update(m.batches)
    acked_batches.update(m.acked_batches)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.bench.crash_soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--kills", type=int, default=None, help="SIGKILLs (default 200)")
    p.add_argument("--quick", action="store_true", help="20 kills")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=4, help="the worker's max_concurrency")
    p.add_argument("--keep", default=None, help="work in this directory and keep it")
    p.add_argument("--verbose", "-v", action="store_true", help="one stderr line per kill")
    ns = p.parse_args(argv)
    kills = ns.kills if ns.kills is not None else (20 if ns.quick else 200)
    seed = ns.seed if ns.seed is not None else random.randrange(2**32)
    workdir = Path(ns.keep) if ns.keep else Path(tempfile.mkdtemp(prefix="taskdeck-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(soak(kills, seed, workdir, ns.concurrency, ns.verbose))
    if ns.keep or not result["ok"]:
        log(f"database kept in {workdir} (seed {seed})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
