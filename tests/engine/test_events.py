"""Events: persisted with increasing seq, replayable, bounded for slow readers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from core import Engine, EngineConfig, EventKind, Submission
from core.testing import FakeClock
from tests.conftest import next_event


async def test_given_since_zero_then_the_whole_log_is_replayed_in_order(engine: Engine) -> None:
    ids = [(await engine.submit("noop")).id for _ in range(3)]
    for i in ids:
        await engine.wait(i, timeout=10)
    seen = []
    it = engine.events(since=0)
    while len(seen) < 9:
        ev = await asyncio.wait_for(anext(it), 10)
        if ev.task_id is not None:
            seen.append(ev)
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == 9
    assert {e.task_id for e in seen} == set(ids)
    since = seen[4].seq
    replay = engine.events(since=since)
    assert (await asyncio.wait_for(anext(replay), 10)).seq == seen[5].seq


async def test_given_control_changes_then_they_are_events_too(engine: Engine) -> None:
    it = engine.events()
    await engine.set_max_concurrency(2)
    ev = await next_event(it, EventKind.LIMITS_CHANGED)
    assert ev.data["max_concurrency"] == 2
    await engine.pause_group("g")
    assert (await next_event(it, EventKind.GROUP_PAUSED)).scope == "g"
    await engine.hold()
    await next_event(it, EventKind.HELD)
    await engine.release()
    await next_event(it, EventKind.RELEASED)
    await engine.pause_all()
    await next_event(it, EventKind.ALL_PAUSED)


async def test_given_the_engine_goes_idle_then_an_idle_event_is_emitted(engine: Engine) -> None:
    it = engine.events()
    res = await engine.submit("noop")
    await next_event(it, EventKind.COMPLETED, res.id)
    await next_event(it, EventKind.IDLE)


async def test_given_progress_then_subscribers_get_the_latest_per_task_coalesced(
    db_path: Path, clock: FakeClock
) -> None:
    release = asyncio.Event()

    async def chatty(ctx: Any, payload: Any) -> None:
        for i in range(1000):
            ctx.progress(done=i, total=1000)
        await release.wait()

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("chatty", chatty)
    await eng.start()
    it = eng.events()
    res = await eng.submit("chatty")
    await next_event(it, EventKind.STARTED, res.id)
    ev = await next_event(it, EventKind.PROGRESS, res.id)
    assert ev.seq is None and ev.data["done"] == 999  # only the latest of 1000 updates
    release.set()
    await next_event(it, EventKind.COMPLETED, res.id)
    await eng.stop()


async def test_given_a_subscriber_that_lags_behind_the_ring_then_it_pages_events_back_from_the_log(
    engine: Engine,
) -> None:
    it = engine.events()
    res = await engine.submit_many([Submission("noop") for _ in range(3000)])
    await engine.wait(res[-1].id, timeout=60)
    while engine.tasks():
        await asyncio.sleep(0.01)
    got = []
    while len(got) < 9000:
        ev = await asyncio.wait_for(anext(it), 10)
        if ev.seq is not None and ev.task_id is not None:
            got.append(ev)
    assert [e.seq for e in got] == sorted(e.seq for e in got)
    assert sum(1 for e in got if e.kind == "completed") == 3000


async def test_given_retention_prunes_tasks_then_a_lagging_subscriber_still_gets_every_event(
    db_path: Path, clock: FakeClock
) -> None:
    async def noop(ctx: Any, payload: Any) -> None:
        return None

    eng = await Engine.open(db_path, EngineConfig(clock=clock, retention_keep=50))
    eng.register("noop", noop)
    await eng.start()
    it = eng.events()
    res = await eng.submit_many([Submission("noop") for _ in range(1500)])
    await eng.wait(res[-1].id, timeout=60)
    while eng.tasks() or eng._prune_running:
        await asyncio.sleep(0.01)
    await eng.prune_history(keep=50)
    assert eng.counts()["completed"] == 50  # the tasks are gone...
    completed = []
    while len(completed) < 1500:
        ev = await asyncio.wait_for(anext(it), 10)
        if ev.kind == "completed":
            completed.append(ev.task_id)
    assert completed == sorted(completed) and len(set(completed)) == 1500  # ...their events were read
    await it.aclose()  # type: ignore[attr-defined]
    await eng.prune_history(keep=50)  # now the sweep takes the events nobody needs
    assert eng.events_of(res[0].id) == []
    await eng.stop()
