"""Fairness: priority aging and weighted shares of slots between groups."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core import Aging, Engine, EngineConfig, InvalidArgument, Priority, TaskState
from core.testing import FakeClock
from tests.conftest import until

AGING = Aging(grace=10, interval=5, step=16, ceiling=Priority.HIGH)


async def aging_engine(db_path: Path, clock: FakeClock, **config: Any) -> Engine:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, aging=AGING, max_concurrency=1, **config))
    order: list[Any] = []
    eng.order = order  # type: ignore[attr-defined]

    async def record(ctx: Any, payload: Any) -> None:
        order.append(payload)

    eng.register("job", record)
    await eng.start()
    return eng


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def eff(eng: Engine, task_id: int) -> int | None:
    rec = eng.get(task_id)
    assert rec is not None
    return rec.effective_priority


async def test_given_aging_when_a_task_waits_then_it_improves_one_step_per_interval_after_the_grace(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await aging_engine(db_path, clock)
    await eng.hold()
    low = (await eng.submit("job", "low", priority=Priority.LOW)).id
    assert eff(eng, low) == Priority.LOW
    clock.advance(14.9)  # grace + most of an interval: not yet
    await settle()
    assert eff(eng, low) == Priority.LOW
    clock.advance(0.2)
    await settle()
    assert eff(eng, low) == Priority.LOW - 16
    clock.advance(5)
    await settle()
    assert eff(eng, low) == Priority.LOW - 32
    clock.advance(3600)  # never past the ceiling
    await settle()
    assert eff(eng, low) == Priority.HIGH
    rec = eng.get(low)
    assert rec is not None and rec.priority == Priority.LOW  # the stored priority never changes
    await eng.stop(grace=0)


async def test_given_aging_when_a_task_is_already_more_urgent_than_the_ceiling_then_it_is_not_demoted(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await aging_engine(db_path, clock)
    await eng.hold()
    crit = (await eng.submit("job", "crit", priority=Priority.CRITICAL)).id
    clock.advance(600)
    await settle()
    assert eff(eng, crit) == Priority.CRITICAL
    await eng.stop(grace=0)


async def test_given_aging_when_a_task_is_paused_then_the_paused_time_does_not_count(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await aging_engine(db_path, clock)
    await eng.hold()
    a = (await eng.submit("job", "a", priority=Priority.LOW)).id
    clock.advance(12)
    await eng.pause(a)
    clock.advance(1000)  # paused: does not age
    await settle()
    await eng.resume(a)
    await settle()
    assert eff(eng, a) == Priority.LOW  # 12 s of waiting: still inside grace + one interval
    clock.advance(3.5)  # 15.5 s of waiting in all
    await settle()
    assert eff(eng, a) == Priority.LOW - 16
    await eng.stop(grace=0)


async def test_given_aging_when_a_task_is_scheduled_for_later_then_it_ages_only_once_due(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await aging_engine(db_path, clock)
    await eng.hold()
    later = (await eng.submit("job", "later", priority=Priority.LOW, delay=100)).id
    clock.advance(100)
    await settle()
    assert eff(eng, later) == Priority.LOW
    clock.advance(15.5)
    await settle()
    assert eff(eng, later) == Priority.LOW - 16
    await eng.stop(grace=0)


async def test_given_aging_when_an_old_low_task_has_aged_past_a_new_normal_one_then_it_runs_first(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await aging_engine(db_path, clock)
    await eng.hold()
    old = (await eng.submit("job", "old-low", priority=Priority.LOW)).id
    clock.advance(10 + 5 * 5)  # 5 steps of 16: 192 -> 112, more urgent than NORMAL (128)
    await settle()
    assert eff(eng, old) == 112
    new = (await eng.submit("job", "new-normal", priority=Priority.NORMAL)).id
    snap = eng.snapshot()
    assert set(snap.waiting) == {old, new}
    await eng.release()
    await eng.wait(new, timeout=10)
    assert eng.order == ["old-low", "new-normal"]  # type: ignore[attr-defined]
    await eng.stop(grace=0)


async def test_given_no_aging_when_a_low_task_waits_long_then_a_new_normal_task_still_runs_first(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, max_concurrency=1))
    order: list[str] = []

    async def record(ctx: Any, payload: str) -> None:
        order.append(payload)

    eng.register("job", record)
    await eng.start()
    await eng.hold()
    await eng.submit("job", "old-low", priority=Priority.LOW)
    clock.advance(3600)
    new = (await eng.submit("job", "new-normal", priority=Priority.NORMAL)).id
    await eng.release()
    await eng.wait(new, timeout=10)
    await until(lambda: len(order) == 2)
    assert order == ["new-normal", "old-low"]
    await eng.stop(grace=0)


def test_aging_settings_are_checked() -> None:
    with pytest.raises(InvalidArgument, match=r"aging\.interval"):
        Aging(interval=0)
    with pytest.raises(InvalidArgument, match=r"aging\.step"):
        Aging(step=0)
    with pytest.raises(InvalidArgument, match=r"aging\.ceiling"):
        Aging(ceiling=300)
    with pytest.raises(InvalidArgument, match="aging"):
        EngineConfig(aging=60)  # type: ignore[arg-type]


# -- weighted shares --------------------------------------------------------------------------


class Busy:
    """Tasks that run for a payload-given number of seconds on the engine's fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def __call__(self, ctx: Any, payload: dict[str, Any]) -> None:
        await self.clock.sleep_until(self.clock.now() + timedelta(seconds=payload["s"]))


async def test_given_weights_1_2_3_when_three_groups_stay_busy_then_their_slot_shares_follow_the_weights(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, max_concurrency=6))
    eng.register("busy", Busy(clock))
    await eng.start()
    for g, w in (("a", 1), ("b", 2), ("c", 3)):
        await eng.set_group_weight(g, w)
    # Durations differ by group and task, so slots free up at uneven times.
    from core import Submission

    subs = [
        Submission("busy", {"s": 1 + (i * 7 + j * 3) % 5}, group=g)
        for i in range(120)
        for j, g in enumerate(("a", "b", "c"))
    ]
    await eng.submit_many(subs)
    held = {"a": 0, "b": 0, "c": 0}
    samples = 0
    for _ in range(200):  # 100 s of busy groups, sampled twice a second
        await until(lambda: len(eng.snapshot().running) == 6)
        for r in eng.snapshot().running:
            held[r.group] += 1  # type: ignore[index]
        samples += 1
        clock.advance(0.5)
        await settle()
    total = sum(held.values())
    assert total == samples * 6
    for g, w in (("a", 1), ("b", 2), ("c", 3)):
        share = held[g] / total
        assert abs(share - w / 6) <= 0.1 * (w / 6), (g, share, held)
    assert eng.group_shares()["c"]["share"] == 3
    await eng.stop(grace=0)


async def test_given_a_minimum_when_another_group_is_heavier_then_the_group_still_gets_its_slots(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, max_concurrency=4))
    eng.register("busy", Busy(clock))
    await eng.start()
    await eng.set_group_weight("bulk", 100)
    await eng.set_group_min_slots("ui", 2)
    await eng.hold()
    from core import Submission

    await eng.submit_many([Submission("busy", {"s": 10}, group="bulk") for _ in range(20)])
    await eng.submit_many([Submission("busy", {"s": 10}, group="ui") for _ in range(5)])
    await eng.release()
    await until(lambda: len(eng.snapshot().running) == 4)
    groups = sorted(r.group or "" for r in eng.snapshot().running)
    assert groups == ["bulk", "bulk", "ui", "ui"]
    await eng.stop(grace=0)


async def test_given_weights_when_only_one_group_has_work_then_it_uses_every_slot(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, max_concurrency=4))
    eng.register("busy", Busy(clock))
    await eng.start()
    await eng.set_group_weight("a", 1)
    await eng.set_group_weight("b", 3)
    from core import Submission

    await eng.submit_many([Submission("busy", {"s": 10}, group="a") for _ in range(8)])
    await until(lambda: len(eng.snapshot().running) == 4)
    await eng.stop(grace=0)


async def test_given_weights_when_a_task_is_urgent_then_it_starts_before_the_shares_are_filled(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, max_concurrency=2))
    eng.register("busy", Busy(clock))
    await eng.start()
    await eng.set_group_weight("a", 1)
    await eng.set_group_weight("b", 1)
    await eng.hold()
    from core import Submission

    await eng.submit_many([Submission("busy", {"s": 10}, group="a") for _ in range(3)])
    urgent = [(await eng.submit("busy", {"s": 10}, group="b", priority=Priority.HIGH)).id for _ in range(2)]
    await eng.release()
    await until(lambda: len(eng.snapshot().running) == 2)
    assert {r.id for r in eng.snapshot().running} == set(urgent)
    await eng.stop(grace=0)


async def test_group_shares_are_stored_and_checked(db_path: Path, clock: FakeClock) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    await eng.set_group_weight("a", 2.5)
    await eng.set_group_min_slots("a", 1)
    with pytest.raises(InvalidArgument, match="weight"):
        await eng.set_group_weight("a", 0)
    with pytest.raises(InvalidArgument, match="min_slots"):
        await eng.set_group_min_slots("a", -1)
    with pytest.raises(InvalidArgument, match="group"):
        await eng.set_group_weight("", 1)
    await eng.stop()
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    assert eng.group_shares()["a"]["weight"] == 2.5
    assert eng.group_shares()["a"]["min_slots"] == 1
    await eng.set_group_weight("a", None)
    await eng.set_group_min_slots("a", None)
    assert eng.group_shares() == {}
    await eng.stop()
    assert (await Engine.open(db_path, EngineConfig(clock=clock))).group_shares() == {}


async def test_aged_tasks_end_normally(db_path: Path, clock: FakeClock) -> None:
    eng = await aging_engine(db_path, clock)
    ids = [(await eng.submit("job", i, priority=Priority.IDLE)).id for i in range(50)]
    for i in ids:
        assert (await eng.wait(i, timeout=10)).state is TaskState.COMPLETED
    await eng.stop(grace=0)
