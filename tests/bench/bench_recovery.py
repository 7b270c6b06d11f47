"""Crash recovery time: a process opens an engine, submits 100,000 tasks (submit_many),
starts 8 of them running (a handler that never returns, max_concurrency 8), prints a
marker and is SIGKILLed. A fresh process then times `Engine.open` (lock, migrations check,
crash recovery of the running tasks, loading the active set). Target: < 2 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from typing import Any

from tests.bench.common import (
    REPO,
    child_cmd,
    child_result,
    emit,
    last_json,
    median,
    note,
    parse_args,
    rnd,
    target,
    temp_dir,
)

N = 100_000
N_QUICK = 10_000
RUNNING = 8
MODULE = "tests.bench.bench_recovery"
MARKER = "READY-TO-KILL"


async def victim(path: str, n: int) -> None:
    from core import Engine, EngineConfig, Submission

    started = 0
    all_running = asyncio.Event()

    async def slow(ctx: Any, payload: Any) -> None:
        nonlocal started
        started += 1
        if started >= RUNNING:
            all_running.set()
        await asyncio.sleep(3600)

    eng = await Engine.open(path, EngineConfig(max_concurrency=RUNNING))
    eng.register("slow", slow)
    await eng.hold()
    await eng.start()
    await eng.submit_many([Submission("slow", {"i": i}) for i in range(n)])
    await eng.release()
    await asyncio.wait_for(all_running.wait(), 60)
    await asyncio.sleep(0.2)  # let the loop settle (claims are committed before handlers run)
    counts = eng.counts()
    print(MARKER, counts["running"], counts["pending"], flush=True)
    await asyncio.sleep(3600)


async def opener(path: str) -> dict[str, Any]:
    from core import Engine, EngineConfig

    t0 = time.perf_counter()
    eng = await Engine.open(path, EngineConfig(max_concurrency=RUNNING))
    open_s = time.perf_counter() - t0
    rec = eng.last_recovery
    counts = eng.counts()
    t1 = time.perf_counter()
    await eng.stop(grace=0)
    return {"open_s": open_s, "stop_s": time.perf_counter() - t1, "recovered": rec.total,
            "restarted": rec.restarted, "resumed": rec.resumed, "pending_after": counts["pending"],
            "running_after": counts["running"]}  # fmt: skip


def one_run(n: int) -> dict[str, Any]:
    with temp_dir() as d:
        path = os.path.join(d, "recovery.db")
        proc = subprocess.Popen(child_cmd(MODULE, {"role": "victim", "path": path, "n": n}), cwd=REPO,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith(MARKER):
                raise RuntimeError(f"victim did not get ready: {line!r}")
            _, running, pending = line.split()
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        wal = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
        t0 = time.perf_counter()
        out = subprocess.run(child_cmd(MODULE, {"role": "opener", "path": path}), cwd=REPO,
                             capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        process_s = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"opener failed: {out.stderr[-2000:]}")
        res = last_json(out.stdout)
        res.update(killed_running=int(running), killed_pending=int(pending), wal_mb=wal / 1e6,
                   db_mb=os.path.getsize(path) / 1e6, opener_process_s=process_s)  # fmt: skip
        return res


def main() -> None:
    args = parse_args()
    if args.child is not None:
        c = args.child
        if c["role"] == "victim":
            asyncio.run(victim(c["path"], c["n"]))
        else:
            child_result(asyncio.run(opener(c["path"])))
        return
    n = N_QUICK if args.quick else N
    runs = []
    for i in range(args.runs):
        runs.append(one_run(n))
        note(f"recovery run {i + 1}/{args.runs}: {runs[-1]}")
    last = runs[-1]
    figures: dict[str, Any] = {
        "n": n,
        "open_s": rnd(median([r["open_s"] for r in runs]), 3),
        "opener_process_s": rnd(median([r["opener_process_s"] for r in runs]), 3),
        "killed_running": last["killed_running"],
        "recovered": last["recovered"],
        "pending_after": last["pending_after"],
        "wal_mb_at_kill": rnd(last["wal_mb"]),
        "db_mb_at_kill": rnd(last["db_mb"]),
        "samples_open_s": [rnd(r["open_s"], 3) for r in runs],
    }
    targets = {
        "open_s": target(figures["open_s"], "<=", 2.0, unit=" s"),
        "all_recovered": target(int(last["pending_after"] == n and last["running_after"] == 0
                                    and last["recovered"] == last["killed_running"]), ">=", 1),
    }  # fmt: skip
    emit("recovery", figures, targets, args)


if __name__ == "__main__":
    main()
