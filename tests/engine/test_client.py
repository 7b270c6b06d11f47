"""A Client (another process's view) submits, controls and follows a running engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core import (
    Client,
    CorruptDatabase,
    Engine,
    EngineConfig,
    InvalidArgument,
    InvalidSubmission,
    SubmitOutcome,
    TaskState,
)
from tests.conftest import until


async def slow(ctx: Any, payload: Any) -> str:
    while True:
        await ctx.yield_point()
        await asyncio.sleep(0.01)


async def quick(ctx: Any, payload: Any) -> Any:
    return payload


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]}


@pytest.fixture
async def running(db_path: Path) -> Any:
    eng = await Engine.open(db_path, EngineConfig(preempt_grace=0.5))
    eng.register("slow", slow)
    eng.register("quick", quick, schema=SCHEMA)
    await eng.start()
    yield eng
    await eng.stop(grace=0)


async def test_given_a_running_engine_when_a_client_submits_then_the_engine_runs_it(
    running: Engine, db_path: Path
) -> None:
    async with Client.open(db_path) as client:
        res = await client.submit("quick", {"n": 3}, label="from the CLI")
        assert res.outcome is SubmitOutcome.INSERTED
        rec = await client.wait(res.id, timeout=10)
        assert rec.state is TaskState.COMPLETED and rec.result == {"n": 3}
        assert (await running.wait(res.id, timeout=10)).label == "from the CLI"


async def test_given_a_registered_schema_then_the_client_validates_payloads(
    running: Engine, db_path: Path
) -> None:
    async with Client.open(db_path) as client:
        with pytest.raises(InvalidSubmission) as info:
            await client.submit("quick", {"n": -1})
        assert info.value.field == "payload.n"
        assert [k.kind for k in client.kinds()] == ["quick", "slow"]


async def test_given_a_client_cancels_a_running_task_then_the_engine_applies_it(
    running: Engine, db_path: Path
) -> None:
    res = await running.submit("slow")
    await until(lambda: running.get(res.id).state is TaskState.RUNNING)  # type: ignore[union-attr]
    async with Client.open(db_path) as client:
        await client.cancel(res.id)  # returns once the request is stored
        assert (await client.wait(res.id, timeout=10)).state is TaskState.CANCELLED


async def test_given_client_control_requests_then_the_engine_applies_them(
    running: Engine, db_path: Path
) -> None:
    async with Client.open(db_path) as client:
        await client.set_max_concurrency(2)
        await client.pause_all()
        await until(lambda: running.snapshot().paused_all and running.max_concurrency == 2)
        await client.resume_all()
        await until(lambda: not running.snapshot().paused_all)


async def test_given_a_client_follows_events_then_it_sees_the_engines_transitions(
    running: Engine, db_path: Path
) -> None:
    async with Client.open(db_path) as client:
        it = client.events()
        res = await running.submit("quick", {"n": 1})
        kinds = []
        async for ev in it:
            if ev.task_id == res.id:
                kinds.append(ev.kind)
            if ev.kind == "completed" and ev.task_id == res.id:
                break
        assert kinds == ["submitted", "started", "completed"]
        await it.aclose()


async def test_given_supersede_from_a_client_then_the_running_task_is_superseded(
    running: Engine, db_path: Path
) -> None:
    old = await running.submit("slow", key="k")
    await until(lambda: running.get(old.id).state is TaskState.RUNNING)  # type: ignore[union-attr]
    async with Client.open(db_path) as client:
        new = await client.submit("slow", key="k", on_duplicate="supersede")
        assert new.outcome is SubmitOutcome.SUPERSEDED and new.id != old.id
        assert (await client.wait(old.id, timeout=10)).state is TaskState.SUPERSEDED
        await until(lambda: running.get(new.id).state is TaskState.RUNNING)  # type: ignore[union-attr]


async def test_given_no_database_then_client_open_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(CorruptDatabase, match="no such file"):
        await Client.open(tmp_path / "missing.db")


async def test_given_a_running_task_then_a_client_sees_its_progress_within_about_a_second(
    db_path: Path,
) -> None:
    go = asyncio.Event()

    async def reporting(ctx: Any, payload: Any) -> None:
        ctx.progress(done=250, total=1000, message="a quarter")
        await go.wait()

    eng = await Engine.open(db_path)
    eng.register("rep", reporting)
    await eng.start()
    res = await eng.submit("rep")
    async with Client.open(db_path) as client:

        def seen() -> bool:
            rec = client.get(res.id)
            return rec is not None and rec.bytes_done == 250

        await until(seen, timeout=5)
        rec = client.get(res.id)
        assert rec is not None and rec.progress == 0.25 and rec.progress_message == "a quarter"
    go.set()
    await eng.wait(res.id, timeout=10)
    await eng.stop()


async def test_given_a_request_the_engine_refuses_then_a_request_failed_event_says_why(
    running: Engine, db_path: Path
) -> None:
    res = await running.submit("slow")
    await until(lambda: running.get(res.id).state is TaskState.RUNNING)  # type: ignore[union-attr]
    async with Client.open(db_path) as client:
        it = client.events()
        await client.move(res.id, to="top")  # a running task cannot be moved
        async for ev in it:
            if ev.kind == "request_failed":
                assert ev.data["op"] == "move" and "only queued tasks can be moved" in ev.data["error"]
                break
        await it.aclose()


async def test_given_an_engine_that_registered_kinds_but_never_started_then_clients_validate_them(
    db_path: Path,
) -> None:
    eng = await Engine.open(db_path)
    eng.register("quick", quick, schema=SCHEMA)
    await eng.stop()
    async with Client.open(db_path) as client:
        with pytest.raises(InvalidSubmission, match="payload"):
            await client.submit("quick", {"n": "three"})
        with pytest.raises(InvalidArgument, match="unknown state 'bogus'"):
            client.tasks(states=["bogus"])
