"""Queries: get, tasks, history, counts, snapshot, stats, logs, retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig, InvalidArgument, RetryPolicy, Submission, TaskState
from core.testing import FakeClock
from tests.conftest import until


async def test_given_tasks_then_tasks_lists_active_ones_in_dispatch_order_with_filters(
    engine: Engine,
) -> None:
    await engine.hold()
    a = (await engine.submit("noop", label="a", group="g", tags={"album": "x"})).id
    b = (await engine.submit("echo", label="b", priority=10)).id
    c = (await engine.submit("noop", label="c", group="g")).id
    assert [t.id for t in engine.tasks()] == [b, a, c]
    assert [t.id for t in engine.tasks(kind="noop")] == [a, c]
    assert [t.id for t in engine.tasks(group="g", limit=1, offset=1)] == [c]
    assert [t.id for t in engine.tasks(tag=("album", "x"))] == [a]
    assert [t.id for t in engine.tasks(search="b")] == [b]
    assert engine.get(a).tags == {"album": "x"}  # type: ignore[union-attr]
    with pytest.raises(InvalidArgument, match="unknown state 'done'"):
        engine.tasks(states=["done"])


async def test_given_finished_tasks_then_history_is_newest_first_and_filterable(
    engine: Engine, clock: FakeClock
) -> None:
    first = await engine.wait((await engine.submit("noop", label="first")).id, timeout=10)
    clock.advance(60)
    second = await engine.wait((await engine.submit("echo", label="second")).id, timeout=10)
    hist = await engine.history()
    assert [r.id for r in hist] == [second.id, first.id]
    assert [r.id for r in await engine.history(kind="noop")] == [first.id]
    assert [r.id for r in await engine.history(since=clock.now() - timedelta(seconds=30))] == [second.id]
    assert [r.id for r in await engine.history(search="first")] == [first.id]
    assert [r.id for r in await engine.history(states=["failed"])] == []


async def test_given_a_running_task_then_snapshot_and_get_show_progress_speed_and_eta(
    db_path: Path, clock: FakeClock
) -> None:
    step = asyncio.Event()
    go_on = asyncio.Event()

    async def download(ctx: Any, payload: Any) -> None:
        ctx.progress(done=0, total=10_000_000, message="fetching")
        step.set()
        await go_on.wait()

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("dl", download)
    await eng.start()
    res = await eng.submit("dl")
    await asyncio.wait_for(step.wait(), 10)
    run = eng._running[res.id]
    for i in range(1, 4):  # 1 MB/s for three seconds of (fake) time
        clock.advance(1)
        run.ctx.progress(done=i * 1_000_000)
    snap = eng.snapshot()
    assert [r.id for r in snap.running] == [res.id]
    r = snap.running[0]
    assert r.bytes_done == 3_000_000 and r.bytes_total == 10_000_000 and r.progress == pytest.approx(0.3)
    assert r.speed == pytest.approx(1_000_000) and r.eta == pytest.approx(7.0)
    rec = eng.get(res.id)
    assert rec is not None and rec.speed == pytest.approx(1_000_000) and rec.progress_message == "fetching"
    assert snap.counts["running"] == 1
    go_on.set()
    await eng.wait(res.id, timeout=10)
    await eng.stop()


async def test_given_logs_then_they_are_kept_with_the_task_and_credentials_are_masked(
    db_path: Path, clock: FakeClock
) -> None:
    async def chatty(ctx: Any, payload: Any) -> None:
        ctx.log("connecting with password=hunter2 to host")
        ctx.log("Authorization: Bearer abcdefghijklmnop", level="warning")
        ctx.log("done")

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("chatty", chatty)
    await eng.start()
    res = await eng.submit("chatty")
    await eng.wait(res.id, timeout=10)
    lines = eng.logs(res.id)
    assert [ln.message for ln in lines] == [
        "connecting with password=*** to host",
        "Authorization: Bearer ***",
        "done",
    ]
    assert lines[1].level == "warning"
    assert [ln.message for ln in eng.logs(res.id, since=lines[1].id)] == ["done"]
    await eng.stop()


async def test_given_history_then_stats_report_counts_durations_and_failure_rate(
    db_path: Path, clock: FakeClock
) -> None:
    async def job(ctx: Any, payload: Any) -> None:
        clock.advance(2)
        ctx.record_io(read=4_000, written=2_000)
        if payload == "fail":
            raise RuntimeError("nope")

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("job", job, retry=RetryPolicy.none())
    await eng.start()
    for p in ("ok", "ok", "ok", "fail"):
        await eng.wait((await eng.submit("job", p)).id, timeout=10)
    s = eng.stats("job")
    assert (s.count, s.completed, s.failed) == (4, 3, 1)
    assert s.failure_rate == pytest.approx(0.25)
    assert s.mean_duration == pytest.approx(2.0)
    assert s.io_rates["read"] == pytest.approx(2_000) and s.io_rates["written"] == pytest.approx(1_000)
    rec = (await eng.history(limit=1))[0]
    assert rec.io.read == 4_000 and rec.duration == pytest.approx(2.0)
    await eng.stop()


async def test_given_retention_then_old_history_is_pruned_with_its_events_and_logs(engine: Engine) -> None:
    res = await engine.submit_many([Submission("noop") for _ in range(30)])
    await engine.wait(res[-1].id, timeout=30)
    await until(lambda: not engine.tasks())
    deleted = await engine.prune_history(keep=10)
    assert deleted == 20
    left = await engine.history(limit=None)
    assert len(left) == 10 and {r.id for r in left} == {r.id for r in res[-10:]}
    assert engine.events_of(res[0].id) == []
    assert engine.counts()["completed"] == 10


async def test_given_a_retry_still_active_then_pruning_keeps_the_task_it_retries(engine: Engine) -> None:
    await engine.hold()
    failed = (await engine.submit("noop")).id
    await engine.cancel(failed)
    retry = await engine.retry(failed)
    assert await engine.prune_history(keep=0) == 0  # the active retry refers to it
    assert await engine.delete_history([failed]) == 0
    await engine.cancel(retry.id)
    assert await engine.delete_history([failed, retry.id]) == 2
    assert engine.get(failed) is None


async def test_given_delete_history_then_active_tasks_are_never_touched(engine: Engine) -> None:
    await engine.hold()
    active = (await engine.submit("noop")).id
    assert await engine.delete_history([active]) == 0
    assert engine.get(active) is not None


async def test_given_counts_then_every_state_is_listed(engine: Engine) -> None:
    await engine.hold()
    await engine.submit("noop")
    counts = engine.counts()
    assert set(counts) == {s.value for s in TaskState}
    assert counts["pending"] == 1 and counts["completed"] == 0


async def test_given_a_retention_limit_then_history_is_pruned_as_tasks_finish(db_path: Path) -> None:
    eng = await Engine.open(db_path, EngineConfig(retention_keep=50))
    eng.register("noop", _noop)
    await eng.start()
    res = await eng.submit_many([Submission("noop") for _ in range(1200)])
    await eng.wait(res[-1].id, timeout=60)
    await until(lambda: not eng.tasks() and not eng._prune_running)
    left = await eng.history(limit=None)
    assert 50 <= len(left) < 50 + 256  # pruned in the background, a batch behind at most
    assert {r.id for r in left} >= {r.id for r in res[-50:]}
    await eng.set_retention(keep=10, days=None)
    await until(lambda: not eng._prune_running and eng.counts()["completed"] == 10)
    await eng.stop()


async def _noop(ctx: Any, payload: Any) -> None:
    return None


async def test_given_a_small_retention_when_more_tasks_finish_then_history_keeps_only_that_many(
    engine: Engine,
) -> None:
    await engine.set_retention(keep=5, days=None)
    ids = [(await engine.submit("noop")).id for _ in range(8)]
    for i in ids:
        await engine.wait(i, timeout=10)
    await until(lambda: engine.counts().get("completed") == 5)  # pruned as they finish
    assert engine.settings()["retention_keep"] == 5
