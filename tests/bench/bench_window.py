"""The window under load (issue #7), one JSON line:

- launch: 100,000 active tasks; time from creating the window to the first populated
  viewport, then scroll the whole list page by page; RSS after it.
- storm: 200 running tasks sending 2,000 progress events/s for 30 s (10 s with --quick):
  event-loop lag p99 (timer drift of a 10 ms QTimer), refreshes per second (bridge
  flushes), whether the backlog grows (events seen vs sent), UI process CPU.

    xvfb-run -a .venv/bin/python -m tests.bench.bench_window [--quick]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.common import (
    cpu_seconds,
    emit,
    note,
    parse_args,
    percentile,
    rnd,
    rss_mb,
    target,
    temp_dir,
)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "")
if not os.environ["QT_QPA_PLATFORM"]:
    del os.environ["QT_QPA_PLATFORM"]

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from core import Engine, EngineConfig, RetryPolicy, Submission, TaskContext
from desktop.app import App, Options, configure_application
from desktop.profile import Profile

STOP = asyncio.Event()


async def idle(ctx: TaskContext, payload: Any) -> None:
    await STOP.wait()


async def chatty(ctx: TaskContext, payload: Any) -> None:
    """10 progress updates a second until told to stop."""
    done = 0
    rate = float(payload.get("rate", 10))
    while not STOP.is_set():
        done += 1
        ctx.progress(done=done, total=1_000_000)
        await asyncio.sleep(1 / rate)


def setup(engine: Engine) -> None:
    engine.register("bench.idle", idle, retry=RetryPolicy.none())
    engine.register("bench.chatty", chatty, retry=RetryPolicy.none())


async def prepare_backlog(db: Path, n: int) -> None:
    async with Engine.open(db) as eng:
        setup(eng)
        batch = 20_000
        for start in range(0, n, batch):
            await eng.submit_many(
                [Submission("bench.idle", {"i": i}, label=f"IMG_{i:06d}.jpg", group="photos")
                 for i in range(start, min(n, start + batch))]
            )  # fmt: skip


async def launch(qapp: QApplication, n: int) -> dict[str, Any]:
    with temp_dir() as d:
        profile_dir = Path(d)
        note(f"writing {n} tasks")
        await prepare_backlog(profile_dir / "tasks.db", n)
        STOP.clear()
        t0 = time.perf_counter()
        app = App(qapp, Options(profile=profile_dir, config=EngineConfig(max_concurrency=1), setup=setup),
                  Profile.create(profile_dir))  # fmt: skip
        assert await app.open()
        w = app.window
        assert w is not None
        view = w.queue_pane.view
        while w.queue_pane.proxy.rowCount() < 20:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        view.viewport().repaint()
        first = time.perf_counter() - t0
        note(f"first viewport after {first:.3f} s")
        while not w.queue_model.is_loaded:
            await asyncio.sleep(0.01)
        loaded = time.perf_counter() - t0
        rows = w.queue_pane.proxy.rowCount()
        note(f"all {rows} rows loaded after {loaded:.2f} s; scrolling")
        t1 = time.perf_counter()
        bar = view.verticalScrollBar()
        step = max(1, bar.pageStep())
        pos = 0
        while pos < bar.maximum():
            pos += step
            bar.setValue(pos)
            view.viewport().repaint()
            await asyncio.sleep(0)
        scrolled = time.perf_counter() - t1
        rss = rss_mb()
        STOP.set()
        await app.shutdown()
        return {"first_viewport_s": rnd(first, 3), "all_loaded_s": rnd(loaded, 2), "rows": rows,
                "scroll_all_s": rnd(scrolled, 2), "rss_mb": rnd(rss, 0)}  # fmt: skip


async def storm(
    qapp: QApplication, seconds: float, tasks: int = 200, per_task: float = 10.0
) -> dict[str, Any]:
    with temp_dir() as d:
        profile_dir = Path(d)
        STOP.clear()
        app = App(qapp, Options(profile=profile_dir, config=EngineConfig(max_concurrency=tasks), setup=setup),
                  Profile.create(profile_dir))  # fmt: skip
        assert await app.open()
        w = app.window
        assert w is not None and app.opened is not None and app.bridge is not None
        eng = app.opened.backend
        assert isinstance(eng, Engine)
        await eng.submit_many(
            [Submission("bench.chatty", {"rate": per_task}, label=f"part {i}") for i in range(tasks)]
        )
        while sum(1 for r in w.queue_model.records() if r.state.value == "running") < tasks:
            await asyncio.sleep(0.05)
        lags: list[float] = []
        timer = QTimer()
        timer.setInterval(10)
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            lags.append(max(0.0, now - last[0] - 0.010))
            last[0] = now

        timer.timeout.connect(tick)
        bridge = app.bridge
        f0, e0, c0, t0 = bridge.flush_count, bridge.events_seen, cpu_seconds(), time.perf_counter()
        seen_mid = 0
        timer.start()
        await asyncio.sleep(seconds / 2)
        seen_mid = bridge.events_seen - e0
        await asyncio.sleep(seconds / 2)
        timer.stop()
        elapsed = time.perf_counter() - t0
        flushes, events, cpu = bridge.flush_count - f0, bridge.events_seen - e0, cpu_seconds() - c0
        STOP.set()
        await app.shutdown()
        rate_first, rate_second = seen_mid / (seconds / 2), (events - seen_mid) / (seconds / 2)
        return {
            "events_per_s": rnd(events / elapsed, 0),
            "refreshes_per_s": rnd(flushes / elapsed, 1),
            "lag_p99_ms": rnd(percentile(lags, 99) * 1000, 1),
            "lag_max_ms": rnd(max(lags) * 1000 if lags else 0.0, 1),
            "backlog_growing": rate_second < 0.8 * rate_first,
            "ui_cpu_percent": rnd(100 * cpu / elapsed, 0),
            "seconds": seconds,
        }


async def run(quick: bool) -> dict[str, Any]:
    qapp = QApplication.instance()
    assert isinstance(qapp, QApplication)
    out: dict[str, Any] = {}
    out["launch"] = await launch(qapp, 20_000 if quick else 100_000)
    out["storm"] = await storm(qapp, 10.0 if quick else 30.0)
    return out


def main() -> None:
    args = parse_args()
    qapp = QApplication(sys.argv[:1])
    configure_application(qapp)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    with loop:
        figures = loop.run_until_complete(run(args.quick))
    la, st = figures["launch"], figures["storm"]
    targets = {
        "first_viewport_s": target(la["first_viewport_s"], "<=", 1.5, unit=" s"),
        "rss_mb": target(la["rss_mb"], "<=", 400, unit=" MB"),
        "lag_p99_ms": target(st["lag_p99_ms"], "<=", 50, unit=" ms"),
        "refreshes_per_s": target(st["refreshes_per_s"], "<=", 30),
        "events_per_s": target(st["events_per_s"], ">=", 1800),
        "no_growing_backlog": target(0.0 if not st["backlog_growing"] else 1.0, "<=", 0),
    }
    emit("window", figures, targets, args)
    sys.stdout.flush()
    # PySide6 can crash while the interpreter tears its objects down: the line is out, leave.
    os._exit(0)


if __name__ == "__main__":
    main()
