"""Deduplication by key: skip, supersede, reject, requeue — all six outcomes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from core import Engine, EngineConfig, Priority, Submission, SubmitOutcome, TaskState
from core.testing import FakeClock
from tests.conftest import until


async def test_given_a_pending_duplicate_when_skipped_then_the_existing_id_is_returned(
    engine: Engine,
) -> None:
    await engine.hold()
    first = await engine.submit("noop", {"v": 1}, key="photo.jpg")
    again = await engine.submit("noop", {"v": 2}, key="photo.jpg")
    assert again.id == first.id and again.outcome is SubmitOutcome.DUPLICATE
    assert engine.get(first.id).payload == {"v": 1}  # type: ignore[union-attr]
    assert len(engine.tasks()) == 1


async def test_given_a_more_urgent_duplicate_then_the_pending_task_is_upgraded(engine: Engine) -> None:
    await engine.hold()
    first = await engine.submit("noop", key="k", priority=Priority.LOW)
    again = await engine.submit("noop", key="k", priority=Priority.HIGH)
    assert again == type(again)(first.id, SubmitOutcome.UPGRADED)
    assert engine.get(first.id).priority == Priority.HIGH  # type: ignore[union-attr]


async def test_given_reject_then_the_outcome_is_rejected_and_nothing_changes(engine: Engine) -> None:
    await engine.hold()
    first = await engine.submit("noop", {"v": 1}, key="k")
    again = await engine.submit("noop", {"v": 2}, key="k", on_duplicate="reject")
    assert again.outcome is SubmitOutcome.REJECTED and again.id == first.id
    assert engine.get(first.id).payload == {"v": 1}  # type: ignore[union-attr]


async def test_given_supersede_of_a_pending_task_then_it_is_replaced_in_place(engine: Engine) -> None:
    await engine.hold()
    first = await engine.submit("noop", {"v": 1}, key="k", label="old")
    again = await engine.submit("noop", {"v": 2}, key="k", label="new", on_duplicate="supersede")
    assert again == type(again)(first.id, SubmitOutcome.SUPERSEDED)
    rec = engine.get(first.id)
    assert (
        rec is not None and rec.payload == {"v": 2} and rec.label == "new" and rec.state is TaskState.PENDING
    )
    await engine.release()
    assert (await engine.wait(first.id, timeout=10)).result is None


async def test_given_supersede_of_a_running_task_then_it_ends_superseded_and_a_new_task_runs(
    db_path: Path, clock: FakeClock
) -> None:
    started: list[Any] = []

    async def work(ctx: Any, payload: Any) -> Any:
        started.append(payload)
        while payload == "old":
            await ctx.yield_point()
            await asyncio.sleep(0.005)
        return payload

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("w", work)
    await eng.start()
    old = await eng.submit("w", "old", key="k")
    await until(lambda: started == ["old"])
    new = await eng.submit("w", "new", key="k", on_duplicate="supersede")
    assert new.outcome is SubmitOutcome.SUPERSEDED and new.id != old.id
    assert (await eng.wait(old.id, timeout=10)).state is TaskState.SUPERSEDED
    assert (await eng.wait(new.id, timeout=10)).result == "new"
    await eng.stop()


async def test_given_requeue_while_running_then_it_runs_once_more_after_it_completes(
    db_path: Path, clock: FakeClock
) -> None:
    release = asyncio.Event()
    runs: list[Any] = []

    async def work(ctx: Any, payload: Any) -> Any:
        runs.append(payload)
        if len(runs) == 1:
            await release.wait()
        return payload

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("w", work)
    await eng.start()
    first = await eng.submit("w", "v1", key="sync-folder")
    await until(lambda: len(runs) == 1)
    again = await eng.submit("w", "v2", key="sync-folder", on_duplicate="requeue")
    assert again == type(again)(first.id, SubmitOutcome.REQUEUED)
    release.set()
    assert (await eng.wait(first.id, timeout=10)).result == "v1"
    await until(lambda: len(runs) == 2)
    assert runs == ["v1", "v2"]
    await until(lambda: not eng.tasks())
    await eng.stop()


async def test_given_a_key_when_the_task_ended_then_the_key_is_free_again(engine: Engine) -> None:
    first = await engine.submit("noop", key="k")
    await engine.wait(first.id, timeout=10)
    again = await engine.submit("noop", key="k")
    assert again.outcome is SubmitOutcome.INSERTED and again.id != first.id


async def test_given_duplicates_inside_one_batch_then_later_ones_see_earlier_ones(engine: Engine) -> None:
    await engine.hold()
    res = await engine.submit_many([Submission("noop", i, key=f"k{i % 2}") for i in range(4)])
    assert [r.outcome for r in res] == ["inserted", "inserted", "duplicate", "duplicate"]
    assert res[2].id == res[0].id


async def test_given_keys_are_per_kind_then_other_kinds_do_not_collide(engine: Engine) -> None:
    await engine.hold()
    a = await engine.submit("noop", key="same")
    b = await engine.submit("echo", key="same")
    assert a.outcome is b.outcome is SubmitOutcome.INSERTED
