"""Submit, run, complete: the first things a user of the engine notices."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core import (
    Engine,
    EngineConfig,
    EngineLocked,
    InvalidSubmission,
    Priority,
    SubmitOutcome,
    TaskState,
    UnknownKind,
)
from core.testing import FakeClock


async def test_given_a_started_engine_when_a_task_is_submitted_then_it_completes_with_its_result(
    engine: Engine,
) -> None:
    res = await engine.submit("echo", {"x": 1})
    assert res.outcome is SubmitOutcome.INSERTED
    rec = await engine.wait(res.id, timeout=10)
    assert rec.state is TaskState.COMPLETED
    assert rec.result == {"x": 1}
    assert rec.attempt == 1
    assert [e.kind for e in engine.events_of(res.id)] == ["submitted", "started", "completed"]


async def test_given_an_unknown_kind_when_submitted_then_unknown_kind_is_raised_and_nothing_written(
    engine: Engine,
) -> None:
    with pytest.raises(UnknownKind, match="nope"):
        await engine.submit("nope")
    assert engine.counts()["pending"] == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"payload": {"x": float("nan")}}, "payload"),
        ({"payload": {"x": object()}}, "payload"),
        ({"payload": "x" * (1 << 20)}, "payload"),
        ({"priority": 256}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": True}, "priority"),
        ({"key": "k" * 257}, "key"),
        ({"tags": {f"t{i}": "v" for i in range(33)}}, "tags"),
        ({"tags": {"k": 1}}, "tags['k']"),
        ({"delay": -1}, "delay"),
        ({"ttl": 0}, "ttl"),
        ({"timeout": float("inf")}, "timeout"),
        ({"on_duplicate": "merge"}, "on_duplicate"),
    ],
)
async def test_given_bad_submit_arguments_then_invalid_submission_names_the_field(
    engine: Engine, kwargs: dict, field: str
) -> None:
    kwargs = dict(kwargs)
    payload = kwargs.pop("payload", None)
    with pytest.raises(InvalidSubmission) as info:
        await engine.submit("noop", payload, **kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert sum(engine.counts().values()) == 0


async def test_given_priorities_when_slots_free_up_then_most_urgent_runs_first(
    db_path: Path, clock: FakeClock
) -> None:
    order: list[int] = []

    async def record(ctx, payload):  # type: ignore[no-untyped-def]
        order.append(payload)

    eng = await Engine.open(db_path, EngineConfig(clock=clock, max_concurrency=1))
    eng.register("rec", record)
    await eng.hold()
    await eng.start()
    ids = [
        (await eng.submit("rec", 1, priority=Priority.LOW)).id,
        (await eng.submit("rec", 2, priority=Priority.HIGH)).id,
        (await eng.submit("rec", 3)).id,
        (await eng.submit("rec", 4, priority=Priority.HIGH)).id,
    ]
    await eng.release()
    for i in ids:
        await eng.wait(i, timeout=10)
    assert order == [2, 4, 3, 1]
    await eng.stop()


async def test_given_a_held_engine_then_nothing_starts_until_released(engine: Engine) -> None:
    await engine.hold()
    res = await engine.submit("noop")
    assert engine.get(res.id).wait_reason == "queue held (stop after current)"  # type: ignore[union-attr]
    await engine.release()
    assert (await engine.wait(res.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_an_engine_holds_a_file_when_another_opens_it_then_engine_locked_names_the_pid(
    db_path: Path,
) -> None:
    first = await Engine.open(db_path)
    try:
        with pytest.raises(EngineLocked) as info:
            await Engine.open(db_path)
        assert info.value.pid == os.getpid()
        assert str(os.getpid()) in str(info.value)
    finally:
        await first.stop()
    second = await Engine.open(db_path)  # released on stop
    await second.stop()


async def test_given_a_new_database_then_it_is_readable_by_its_owner_only(db_path: Path) -> None:
    eng = await Engine.open(db_path)
    eng.register("noop", lambda ctx, p: None, run_in="thread")
    await eng.start()
    await eng.wait((await eng.submit("noop")).id, timeout=10)
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{db_path}{suffix}")
        if p.exists():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    await eng.stop()


async def test_given_memory_database_then_engine_runs_tasks() -> None:
    async with Engine.open(":memory:") as eng:
        eng.register("one", _one)
        await eng.start()
        rec = await eng.wait((await eng.submit("one")).id, timeout=10)
        assert rec.result == 1


async def _one(ctx, payload):  # type: ignore[no-untyped-def]
    return 1


@pytest.mark.parametrize("field", ["kind", "label", "group", "key", "payload", "tags"])
async def test_given_text_that_is_not_valid_unicode_then_invalid_submission_names_the_field(
    engine: Engine, field: str
) -> None:
    bad = "photo-\udcff.jpg"  # a lone surrogate, as undecodable bytes on a command line arrive
    kwargs: dict = {
        "kind": {"kind": bad},
        "label": {"label": bad},
        "group": {"group": bad},
        "key": {"key": bad},
        "payload": {"payload": {"name": bad}},
        "tags": {"tags": {"name": bad}},
    }[field]
    kind = kwargs.pop("kind", "noop")
    with pytest.raises((InvalidSubmission, UnknownKind)) as info:
        await engine.submit(kind, **kwargs)
    if field != "kind":
        assert info.value.field.startswith(field)  # type: ignore[union-attr]
        assert "not valid Unicode" in str(info.value)
