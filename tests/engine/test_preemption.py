"""Preemption (SPEC §4.2): exactly as many victims as urgent work needs, least urgent first
(ties: the most recently started), never an equally urgent task; victims pause, keep their
attempt and checkpoint, and resume by themselves once nothing more urgent wants the slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig, Priority, TaskState
from core.testing import FakeClock
from tests.conftest import until

GRACE = 5.0
LIFECYCLE = {"submitted", "started", "preempted", "resumed", "completed", "paused", "interrupted"}


def quiet() -> dict[str, float]:
    """A resource sampler for a machine doing nothing (the real one reads the host)."""
    return dict.fromkeys(("disk_read", "disk_write", "net_rx", "net_tx"), 0.0)


class Workers:
    """A handler whose runs hold their slot until released.

    Each run records (task id, attempt, resume data) and checkpoints how many times the task
    has started. A cooperative run stops at its yield points; a stubborn one (payload
    {"stubborn": true}) never reaches one on its first run, so only cancellation stops it."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int, Any]] = []
        self.released: set[int] = set()

    def starts(self, task_id: int) -> int:
        return sum(1 for run in self.runs if run[0] == task_id)

    async def __call__(self, ctx: Any, payload: Any) -> int:
        resumed_from = ctx.resume_data
        self.runs.append((ctx.id, ctx.attempt, resumed_from))
        await ctx.checkpoint({"starts": (resumed_from or {}).get("starts", 0) + 1})
        if (payload or {}).get("stubborn") and resumed_from is None:
            await asyncio.Event().wait()  # no yield point: ignores the interruption
        while ctx.id not in self.released:
            await ctx.yield_point()
            await asyncio.sleep(0.001)
        return ctx.id


Make = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def make(db_path: Path, clock: FakeClock) -> AsyncIterator[Make]:
    """Opens and starts an engine with a "work" kind on a fake clock and a quiet sampler."""
    opened: list[Engine] = []

    async def open_engine(workers: Workers, **config: Any) -> Engine:
        config.setdefault("preempt_grace", GRACE)
        eng = await Engine.open(db_path, EngineConfig(clock=clock, resource_sampler=quiet, **config))
        opened.append(eng)
        eng.register("work", workers)
        eng.register("urgent", workers)
        await eng.start()
        return eng

    yield open_engine
    for eng in opened:
        await eng.stop(grace=0)


async def ticks(n: int = 20) -> None:
    """Let the loop run a few rounds: dispatch decisions are made in call_soon callbacks."""
    for _ in range(n):
        await asyncio.sleep(0)


def state(eng: Engine, task_id: int) -> TaskState:
    rec = eng.get(task_id)
    assert rec is not None
    return rec.state


def lifecycle(eng: Engine, task_id: int) -> list[str]:
    return [e.kind for e in eng.events_of(task_id) if e.kind in LIFECYCLE]


def interrupting(eng: Engine) -> dict[int, str | None]:
    return {r.id: r.interrupting for r in eng.snapshot().running}


async def start_one(eng: Engine, workers: Workers, clock: FakeClock, priority: int, **options: Any) -> int:
    """Submit a "work" task, wait until it runs, then move the clock on one second, so every
    task started this way has its own start time."""
    res = await eng.submit("work", {}, priority=priority, **options)
    await until(lambda: workers.starts(res.id) == 1)
    clock.advance(1)
    return res.id


async def test_given_full_slots_when_two_critical_tasks_arrive_then_exactly_the_two_least_urgent_are_preempted(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=4)
    low_old = await start_one(eng, workers, clock, Priority.LOW)
    low_new = await start_one(eng, workers, clock, Priority.LOW)
    normal = await start_one(eng, workers, clock, Priority.NORMAL)
    idle = await start_one(eng, workers, clock, Priority.IDLE)

    c1 = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    c2 = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await until(lambda: workers.starts(c1.id) == 1 and workers.starts(c2.id) == 1)

    assert state(eng, idle) is TaskState.PAUSED and state(eng, low_new) is TaskState.PAUSED
    assert state(eng, low_old) is TaskState.RUNNING and state(eng, normal) is TaskState.RUNNING
    for victim in (idle, low_new):
        rec = eng.get(victim)
        assert rec is not None and rec.pause_reasons == ("preempted",) and rec.attempt == 1
    preempted = [e for e in (*eng.events_of(idle), *eng.events_of(low_new)) if e.kind == "preempted"]
    assert sorted(e.data["by"] for e in preempted) == sorted([c1.id, c2.id])
    for bystander in (low_old, normal):
        assert "preempted" not in lifecycle(eng, bystander)


async def test_given_two_urgent_tasks_of_one_kind_then_both_victims_are_interrupted_at_once(
    make: Make, clock: FakeClock
) -> None:
    """Both urgent tasks lack a slot the moment they arrive, so both victims get their
    grace together: the second urgent task does not wait for a second grace period."""
    workers = Workers()
    eng = await make(workers, max_concurrency=2)
    a = (await eng.submit("work", {"stubborn": True}, priority=Priority.LOW)).id
    b = (await eng.submit("work", {"stubborn": True}, priority=Priority.LOW)).id
    await until(lambda: workers.starts(a) == 1 and workers.starts(b) == 1)
    c1 = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    c2 = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await ticks()
    assert interrupting(eng) == {a: "preempt", b: "preempt"}
    clock.advance(GRACE)
    await until(lambda: workers.starts(c1.id) == 1)
    await until(lambda: workers.starts(c2.id) == 1)


async def test_given_a_high_task_running_when_another_high_task_arrives_then_nothing_is_preempted(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1)
    running = await start_one(eng, workers, clock, Priority.HIGH)
    newcomer = await eng.submit("urgent", {}, priority=Priority.HIGH)
    await ticks()
    assert interrupting(eng) == {running: None}
    clock.advance(GRACE * 2)
    await ticks()
    assert state(eng, running) is TaskState.RUNNING and state(eng, newcomer.id) is TaskState.PENDING
    rec = eng.get(newcomer.id)
    assert rec is not None and rec.wait_reason == "waiting for a slot"
    # A more urgent newcomer does preempt it.
    critical = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await until(lambda: workers.starts(critical.id) == 1)
    assert state(eng, running) is TaskState.PAUSED


async def test_given_equal_priorities_then_the_most_recently_started_is_the_victim(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=2)
    # The later starter has the smaller id and the earlier queue position: only its start
    # time makes it the victim.
    late = (await eng.submit("work", {}, priority=Priority.LOW, delay=10)).id
    early = await start_one(eng, workers, clock, Priority.LOW)
    clock.advance(9)
    await until(lambda: workers.starts(late) == 1)
    assert late < early

    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await until(lambda: workers.starts(c.id) == 1)
    assert state(eng, late) is TaskState.PAUSED and state(eng, early) is TaskState.RUNNING


async def test_given_equal_priorities_started_in_one_dispatch_pass_then_the_one_started_last_is_the_victim(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=2)
    await eng.hold()
    first = (await eng.submit("work", {}, priority=Priority.LOW)).id
    second = (await eng.submit("work", {}, priority=Priority.LOW)).id
    await eng.release()  # both start in one pass, at one clock instant, first then second
    await until(lambda: workers.starts(first) == 1 and workers.starts(second) == 1)
    assert [run[0] for run in workers.runs] == [first, second]

    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await until(lambda: workers.starts(c.id) == 1)
    assert state(eng, second) is TaskState.PAUSED and state(eng, first) is TaskState.RUNNING


async def test_given_a_cooperative_victim_then_it_stops_at_a_yield_point_and_resumes_with_its_checkpoint(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1)
    victim = await start_one(eng, workers, clock, Priority.LOW)
    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    # It stops at its next yield point, well before its grace ends (the clock does not move).
    await until(lambda: workers.starts(c.id) == 1)
    rec = eng.get(victim)
    assert rec is not None and rec.state is TaskState.PAUSED and rec.pause_reasons == ("preempted",)
    assert rec.resume_data == {"starts": 1} and rec.preempted_by == c.id
    assert rec.wait_reason == f"preempted by #{c.id} — resumes when a slot frees"
    assert eng.snapshot().preempted == {victim: c.id}
    # Less urgent work that arrives meanwhile queues behind the victim, which keeps its place.
    later = await eng.submit("work", {}, priority=Priority.LOW)

    workers.released.add(c.id)
    await until(lambda: workers.starts(victim) == 2)
    assert workers.runs[-1] == (victim, 1, {"starts": 1})  # same attempt, its checkpoint
    assert state(eng, later.id) is TaskState.PENDING
    assert lifecycle(eng, victim) == ["submitted", "started", "preempted", "resumed", "started"]
    by = [e.data.get("by") for e in eng.events_of(victim) if e.kind == "preempted"]
    assert by == [c.id]
    workers.released.update({victim, later.id})
    done = await eng.wait(victim, timeout=10)
    assert done.state is TaskState.COMPLETED and done.attempt == 1


async def test_given_a_victim_that_ignores_the_interruption_then_it_is_cancelled_after_the_grace(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1)
    victim = (await eng.submit("work", {"stubborn": True}, priority=Priority.LOW)).id
    await until(lambda: workers.starts(victim) == 1 and eng.get(victim).resume_data is not None)  # type: ignore[union-attr]
    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await until(lambda: interrupting(eng).get(victim) == "preempt")
    clock.advance(GRACE - 0.5)
    await ticks()
    assert state(eng, victim) is TaskState.RUNNING and workers.starts(c.id) == 0
    rec = eng.get(victim)
    assert rec is not None and rec.wait_reason == "stopping"

    clock.advance(0.5)
    await until(lambda: workers.starts(c.id) == 1)
    rec = eng.get(victim)
    assert rec is not None and rec.state is TaskState.PAUSED and rec.pause_reasons == ("preempted",)

    workers.released.update({c.id, victim})
    done = await eng.wait(victim, timeout=10)
    assert done.state is TaskState.COMPLETED and done.attempt == 1
    assert workers.runs[-1] == (victim, 1, {"starts": 1})
    assert lifecycle(eng, victim) == ["submitted", "started", "preempted", "resumed", "started", "completed"]


async def test_given_more_urgent_work_waiting_then_a_victim_resumes_only_after_it(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1)
    victim = await start_one(eng, workers, clock, Priority.LOW)
    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await until(lambda: workers.starts(c.id) == 1)
    normal = await eng.submit("work", {}, priority=Priority.NORMAL)
    workers.released.add(c.id)
    await until(lambda: workers.starts(normal.id) == 1)
    assert state(eng, victim) is TaskState.PAUSED and workers.starts(victim) == 1
    workers.released.add(normal.id)
    await until(lambda: workers.starts(victim) == 2)
    assert [run[0] for run in workers.runs] == [victim, c.id, normal.id, victim]


async def test_given_a_full_group_then_an_urgent_task_of_the_group_preempts_within_the_group(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=8)
    await eng.set_group_limit("g", 2)
    outsider = await start_one(eng, workers, clock, Priority.IDLE)
    g_low = await start_one(eng, workers, clock, Priority.LOW, group="g")
    g_normal = await start_one(eng, workers, clock, Priority.NORMAL, group="g")

    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL, group="g")
    await until(lambda: workers.starts(c.id) == 1)
    assert state(eng, g_low) is TaskState.PAUSED
    assert state(eng, g_normal) is TaskState.RUNNING and state(eng, outsider) is TaskState.RUNNING
    assert "preempted" not in lifecycle(eng, outsider)


async def test_given_preempt_at_none_then_nothing_is_preempted(make: Make, clock: FakeClock) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1, preempt_at=None)
    running = await start_one(eng, workers, clock, Priority.IDLE)
    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await ticks()
    assert interrupting(eng) == {running: None}
    clock.advance(GRACE * 2)
    await ticks()
    assert state(eng, running) is TaskState.RUNNING and workers.starts(c.id) == 0
    workers.released.add(running)
    await until(lambda: workers.starts(c.id) == 1)
    assert "preempted" not in lifecycle(eng, running)


async def test_given_a_newcomer_less_urgent_than_preempt_at_then_it_waits_for_a_free_slot(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1)  # preempt_at defaults to HIGH
    running = await start_one(eng, workers, clock, Priority.IDLE)
    normal = await eng.submit("urgent", {}, priority=Priority.NORMAL)
    just_above = await eng.submit("urgent", {}, priority=Priority.HIGH + 1)
    await ticks()
    assert interrupting(eng) == {running: None}
    assert state(eng, normal.id) is TaskState.PENDING and state(eng, just_above.id) is TaskState.PENDING
    at_threshold = await eng.submit("urgent", {}, priority=Priority.HIGH)
    await until(lambda: workers.starts(at_threshold.id) == 1)
    assert state(eng, running) is TaskState.PAUSED


async def test_given_a_preempted_task_when_the_engine_restarts_then_it_resumes_by_itself(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1)
    victim = await start_one(eng, workers, clock, Priority.LOW)
    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await until(lambda: workers.starts(c.id) == 1)
    await eng.stop(grace=0)

    after = Workers()
    after.released.update({victim, c.id})
    eng = await make(after, max_concurrency=1)
    done = await eng.wait(victim, timeout=10)
    assert done.state is TaskState.COMPLETED and done.attempt == 1
    assert after.runs == [(c.id, 1, {"starts": 1}), (victim, 1, {"starts": 1})]


async def test_given_an_urgent_task_held_back_by_a_rate_limit_then_nothing_is_preempted_until_its_token_is_due(
    make: Make, clock: FakeClock
) -> None:
    workers = Workers()
    eng = await make(workers, max_concurrency=1)
    await eng.set_rate_limit("kind:urgent", 0.1, burst=1)  # one start every 10 s
    workers.released.add(first := (await eng.submit("urgent", {}, priority=Priority.CRITICAL)).id)
    await eng.wait(first, timeout=10)
    victim = await start_one(eng, workers, clock, Priority.LOW)
    c = await eng.submit("urgent", {}, priority=Priority.CRITICAL)
    await ticks()
    # A free slot would not let it start yet: preempting now would only churn.
    assert interrupting(eng) == {victim: None}
    clock.advance(8.5)
    await ticks()
    assert interrupting(eng) == {victim: None}
    clock.advance(0.5)  # its token is due 10 s after the first start
    await until(lambda: workers.starts(c.id) == 1)
    assert state(eng, victim) is TaskState.PAUSED
