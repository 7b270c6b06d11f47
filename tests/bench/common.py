"""Shared helpers of the benchmarks: arguments, timing, medians, targets, RSS/CPU,
child processes and the one JSON line each benchmark prints.

A benchmark module `bench_<name>.py` has a `main()` that measures Taskdeck and its peers
in the same run (the median of 3 runs each, 1 with --quick) and prints one JSON line:
{"bench": name, ...figures..., "targets": {...}, "ok": bool, "machine": {...}}.
Benchmarks report; they never gate (the exit status is 0 unless the benchmark crashed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = 3
ACTIVE_STATES = ("pending", "blocked", "running", "waiting", "paused")


# -- arguments --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Args:
    quick: bool
    runs: int
    child: dict[str, Any] | None  # parameters when this process is one measured run


def parse_args(argv: Sequence[str] | None = None) -> Args:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="smaller N and one run (a smoke test)")
    p.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, 1 with --quick)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # JSON parameters of one run
    ns = p.parse_args(argv)
    runs = ns.runs if ns.runs is not None else (1 if ns.quick else RUNS)
    return Args(quick=ns.quick, runs=max(1, runs), child=json.loads(ns.child) if ns.child else None)


# -- figures ----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rnd(x: float | None, digits: int = 2) -> float | None:
    if x is None:
        return None
    return round(x, digits) if abs(x) >= 1 else round(x, max(digits, 4))


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of `values`."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def target(
    value: float | None, op: str, goal: float, floor: float | None = None, unit: str = ""
) -> dict[str, Any]:
    """A target: `value op goal` (op '>=' or '<='), with an optional floor (a hard bound)."""

    def holds(bound: float) -> bool:
        if value is None:
            return False
        return value >= bound if op == ">=" else value <= bound

    out: dict[str, Any] = {"value": value, "goal": f"{op} {goal:g}{unit}", "met": holds(goal)}
    if floor is not None:
        out["floor"] = f"{op} {floor:g}{unit}"
        out["floor_met"] = holds(floor)
    return out


def machine() -> dict[str, Any]:
    try:
        import huey

        huey_version = huey.__version__
    except Exception:  # pragma: no cover - huey is a bench extra
        huey_version = None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True),
        "huey": huey_version,
    }


def emit(
    bench: str, figures: dict[str, Any], targets: dict[str, dict[str, Any]], args: Args
) -> dict[str, Any]:
    """Print the benchmark's one JSON line (and return it)."""
    line = {
        "bench": bench,
        **figures,
        "targets": targets,
        "ok": all(t.get("met", False) for t in targets.values()),
        "runs": args.runs,
        "quick": args.quick,
        "machine": machine(),
    }
    print(json.dumps(line, separators=(", ", ": ")), flush=True)
    return line


def note(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON line)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def repeat(runs: int, fn: Callable[[], T], label: str = "") -> list[T]:
    out = []
    for i in range(runs):
        gc.collect()
        out.append(fn())
        if label:
            note(f"{label} run {i + 1}/{runs}: {out[-1]}")
    return out


# -- process measurements ---------------------------------------------------------------


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 1e6


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (ru_maxrss, KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def cpu_seconds() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


@contextlib.contextmanager
def temp_dir(prefix: str = "taskdeck-bench-") -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        yield d


# -- child processes --------------------------------------------------------------------


def child_cmd(module: str, params: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", module, "--child", json.dumps(params)]


def last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise RuntimeError(f"no JSON line in the output: {stdout[-500:]!r}")


def run_child(module: str, params: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (clean RSS and CPU figures): the module's
    main() sees `--child <params>` and prints its result as a JSON line."""
    proc = subprocess.run(
        child_cmd(module, params), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    return last_json(proc.stdout)


def child_result(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


# -- engine helpers ---------------------------------------------------------------------


async def noop(ctx: Any, payload: Any) -> None:
    return None


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def wait_all(engine: Any, ids: Sequence[int], timeout: float = 600) -> None:
    """Wait until every task of `ids` ended, when they were dispatched in id order at one
    priority: the last one ends after all but the few that ran beside it, which are among
    the last `max_concurrency` ids before it (waiting on each of 16 covers that)."""
    for task_id in ids[-16:]:
        await engine.wait(task_id, timeout=timeout)


def active_counts(engine: Any) -> dict[str, int]:
    counts = engine.snapshot().counts
    return {k: v for k, v in counts.items() if k in ACTIVE_STATES and v}
