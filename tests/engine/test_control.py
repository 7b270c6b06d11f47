"""Control: pause/resume, cancel, priorities, moves, global and group switches, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core import (
    Engine,
    EngineConfig,
    InvalidArgument,
    InvalidState,
    Priority,
    RetryPolicy,
    TaskNotFound,
    TaskState,
)
from core.testing import FakeClock
from tests.conftest import until


class Gate:
    """A handler kind whose runs block until released; records what ran, in order."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.release = asyncio.Event()

    async def __call__(self, ctx: Any, payload: Any) -> Any:
        self.started.append(payload)
        await self.release.wait()
        return payload


async def open_engine(db_path: Path, clock: FakeClock, **config: Any) -> Engine:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, **config))
    return eng


async def stepper(ctx: Any, payload: Any) -> int:
    """Counts to payload['n'], checkpointing every step, resuming from its checkpoint."""
    i = (ctx.resume_data or {}).get("i", 0)
    while i < payload["n"]:
        await ctx.yield_point()
        await asyncio.sleep(0.005)
        i += 1
        await ctx.checkpoint({"i": i})
        ctx.progress(done=i, total=payload["n"])
    return i


async def test_given_a_running_task_when_paused_then_it_stops_with_its_checkpoint_and_resumes_from_it(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await open_engine(db_path, clock)
    eng.register("step", stepper)
    await eng.start()
    res = await eng.submit("step", {"n": 10_000})
    await until(lambda: (eng.get(res.id).resume_data or {}).get("i", 0) >= 5)  # type: ignore[union-attr]
    await eng.pause(res.id)
    await until(lambda: eng.get(res.id).state is TaskState.PAUSED)  # type: ignore[union-attr]
    rec = eng.get(res.id)
    assert rec is not None and rec.pause_reasons == ("user",) and rec.attempt == 1
    saved = rec.resume_data["i"]
    assert saved >= 5
    await eng.resume(res.id)
    await until(lambda: (eng.get(res.id).resume_data or {}).get("i", 0) > saved)  # type: ignore[union-attr]
    assert eng.get(res.id).attempt == 1  # type: ignore[union-attr]  # a pause is not a retry
    kinds = [e.kind for e in eng.events_of(res.id)]
    assert kinds[:5] == ["submitted", "started", "paused", "resumed", "started"]
    await eng.cancel(res.id)
    assert (await eng.wait(res.id, timeout=10)).state is TaskState.CANCELLED
    await eng.stop()


async def test_given_a_pending_task_when_paused_then_it_does_not_run_until_resumed(engine: Engine) -> None:
    await engine.hold()
    res = await engine.submit("noop")
    await engine.pause(res.id)
    await engine.release()
    await asyncio.sleep(0.05)
    rec = engine.get(res.id)
    assert rec is not None and rec.state is TaskState.PAUSED and rec.wait_reason == "paused by you"
    await engine.resume(res.id)
    assert (await engine.wait(res.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_resume_of_a_task_that_is_not_paused_then_invalid_state(engine: Engine) -> None:
    await engine.hold()
    res = await engine.submit("noop")
    with pytest.raises(InvalidState, match=f"task {res.id} is not paused"):
        await engine.resume(res.id)


async def test_given_unknown_or_finished_ids_then_control_says_which(engine: Engine) -> None:
    with pytest.raises(TaskNotFound, match="task 999 does not exist"):
        await engine.cancel(999)
    done = await engine.wait((await engine.submit("noop")).id, timeout=10)
    with pytest.raises(InvalidState, match=f"task {done.id} already ended \\(completed\\)"):
        await engine.pause(done.id)


async def test_given_a_pending_task_when_cancelled_then_it_is_in_history_as_cancelled(engine: Engine) -> None:
    await engine.hold()
    res = await engine.submit("noop")
    await engine.cancel(res.id)
    rec = engine.get(res.id)
    assert rec is not None and rec.state is TaskState.CANCELLED and rec.finished_at is not None
    assert [r.id for r in await engine.history()] == [res.id]
    await engine.release()


async def test_given_set_priority_then_dispatch_order_follows_the_new_priority(
    db_path: Path, clock: FakeClock
) -> None:
    gate = Gate()
    eng = await open_engine(db_path, clock, max_concurrency=1)
    eng.register("g", gate)
    await eng.hold()
    await eng.start()
    a = await eng.submit("g", "a")
    b = await eng.submit("g", "b")
    await eng.set_priority(b.id, Priority.HIGH)
    assert [t.id for t in eng.tasks()] == [b.id, a.id]
    with pytest.raises(InvalidArgument, match="priority"):
        await eng.set_priority(a.id, 300)
    gate.release.set()
    await eng.release()
    await eng.wait(a.id, timeout=10)
    assert gate.started == ["b", "a"]
    assert [e.kind for e in eng.events_of(b.id)][:2] == ["submitted", "priority_changed"]
    await eng.stop()


async def test_given_moves_then_the_queue_order_changes_and_priority_follows_the_neighbour(
    engine: Engine,
) -> None:
    await engine.hold()
    ids = [(await engine.submit("noop", i)).id for i in range(4)]
    low = (await engine.submit("noop", "low", priority=Priority.LOW)).id
    await engine.move(ids[3], before=ids[1])
    assert [t.id for t in engine.tasks()] == [ids[0], ids[3], ids[1], ids[2], low]
    await engine.move(ids[2], to="top")
    assert [t.id for t in engine.tasks()] == [ids[2], ids[0], ids[3], ids[1], low]
    await engine.move(low, before=ids[0])
    order = engine.tasks()
    assert [t.id for t in order] == [ids[2], low, ids[0], ids[3], ids[1]]
    assert order[1].priority == Priority.NORMAL  # took its new neighbour's priority
    moved = [e for e in engine.events_of(low) if e.kind == "moved"]
    assert moved[0].data["old_priority"] == Priority.LOW
    await engine.move(ids[2], to="bottom")
    assert engine.tasks()[-1].id == ids[2]
    with pytest.raises(InvalidArgument):
        await engine.move(ids[0])
    with pytest.raises(InvalidArgument):
        await engine.move(ids[0], before=ids[0])


async def test_given_many_moves_into_one_gap_then_order_stays_exact(engine: Engine) -> None:
    await engine.hold()
    a = (await engine.submit("noop", "a")).id
    b = (await engine.submit("noop", "b")).id
    moved = []
    for i in range(80):  # bisecting one gap 80 times runs out of float precision
        t = (await engine.submit("noop", i)).id
        await engine.move(t, before=b)
        moved.append(t)
    assert [t.id for t in engine.tasks()] == [a, *moved, b]


async def test_given_run_next_then_the_task_goes_first_but_never_above_high(engine: Engine) -> None:
    await engine.hold()
    crit = (await engine.submit("noop", priority=Priority.CRITICAL)).id
    normal = (await engine.submit("noop")).id
    idle = (await engine.submit("noop", priority=Priority.IDLE)).id
    await engine.move(idle, to="top")
    order = engine.tasks()
    assert [t.id for t in order] == [crit, idle, normal]
    assert order[1].priority == Priority.HIGH


async def test_given_pause_all_then_running_and_queued_tasks_pause_and_new_ones_arrive_paused(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await open_engine(db_path, clock, preempt_grace=1)
    eng.register("step", stepper)
    await eng.start()
    running = await eng.submit("step", {"n": 100_000})
    await until(lambda: eng.get(running.id).state is TaskState.RUNNING)  # type: ignore[union-attr]
    await eng.pause_all()
    later = await eng.submit("step", {"n": 1})
    await until(lambda: eng.get(running.id).state is TaskState.PAUSED)  # type: ignore[union-attr]
    assert eng.get(running.id).pause_reasons == ("global",)  # type: ignore[union-attr]
    assert eng.get(later.id).state is TaskState.PAUSED  # type: ignore[union-attr]
    assert eng.snapshot().paused_all
    await eng.resume_all()
    assert (await eng.wait(later.id, timeout=10)).state is TaskState.COMPLETED
    await until(lambda: eng.get(running.id).state is TaskState.RUNNING)  # type: ignore[union-attr]
    await eng.stop(grace=0)
    # the switch survives a restart
    eng = await open_engine(db_path, clock)
    await eng.pause_all()
    await eng.stop()
    eng = await open_engine(db_path, clock)
    assert eng.snapshot().paused_all
    await eng.stop()


async def test_given_a_group_limit_then_no_more_than_that_run_and_others_are_not_blocked(
    db_path: Path, clock: FakeClock
) -> None:
    gate = Gate()
    eng = await open_engine(db_path, clock, max_concurrency=4)
    eng.register("g", gate)
    await eng.set_group_limit("s3://bucket", 1)
    await eng.start()
    a = await eng.submit("g", "a", group="s3://bucket")
    b = await eng.submit("g", "b", group="s3://bucket")
    c = await eng.submit("g", "c")  # behind b, other group: must not wait for b
    await until(lambda: sorted(gate.started) == ["a", "c"])
    rec = eng.get(b.id)
    assert rec is not None and rec.state is TaskState.PENDING
    assert rec.wait_reason == "group s3://bucket at its limit (1)"
    gate.release.set()
    for r in (a, b, c):
        await eng.wait(r.id, timeout=10)
    assert [g.limit for g in eng.groups() if g.name == "s3://bucket"] == [1]
    await eng.stop()


async def test_given_max_concurrency_changed_live_then_dispatch_follows(
    db_path: Path, clock: FakeClock
) -> None:
    gate = Gate()
    eng = await open_engine(db_path, clock, max_concurrency=1)
    eng.register("g", gate)
    await eng.start()
    for i in range(3):
        await eng.submit("g", i)
    await until(lambda: len(gate.started) == 1)
    await eng.set_max_concurrency(3)
    await until(lambda: len(gate.started) == 3)
    with pytest.raises(InvalidArgument, match="max_concurrency"):
        await eng.set_max_concurrency(0)
    gate.release.set()
    await eng.stop()
    eng = await open_engine(db_path, clock, max_concurrency=1)
    assert eng.max_concurrency == 3  # the user's setting outlives the config default
    await eng.stop()


async def test_given_a_failed_task_when_retried_then_a_new_task_links_back(
    db_path: Path, clock: FakeClock
) -> None:
    calls = []

    async def once_broken(ctx: Any, payload: Any) -> str:
        calls.append(ctx.id)
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return "fine"

    eng = await open_engine(db_path, clock)
    eng.register("x", once_broken, retry=RetryPolicy.none())
    await eng.start()
    first = await eng.wait((await eng.submit("x", {"a": 1}, label="report")).id, timeout=10)
    assert first.state is TaskState.FAILED
    again = await eng.retry(first.id)
    rec = await eng.wait(again.id, timeout=10)
    assert rec.state is TaskState.COMPLETED and rec.retry_of == first.id and rec.payload == {"a": 1}
    assert rec.label == "report" and rec.id != first.id
    with pytest.raises(InvalidState, match="completed"):
        await eng.retry(rec.id)
    await eng.stop()


async def test_given_bulk_control_then_it_returns_the_ids_it_touched(engine: Engine) -> None:
    await engine.hold()
    a = (await engine.submit("noop", group="g1", tags={"batch": "7"})).id
    b = (await engine.submit("noop", group="g2", tags={"batch": "7"})).id
    c = (await engine.submit("noop", group="g1")).id
    assert await engine.cancel_where(tag=("batch", "7")) == [a, b]
    assert await engine.cancel_where(group="g1") == [c]
    assert engine.counts()["cancelled"] == 3
