"""Schedules on the injected clock: triggers, time zones, overlap, misfire, pause."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core import (
    Client,
    Engine,
    EngineConfig,
    InvalidSchedule,
    InvalidSubmission,
    RetryPolicy,
    ScheduleNotFound,
    ScheduleSpec,
    TaskState,
    schedule_engine,
)
from core.testing import FakeClock
from tests.conftest import until

MONDAY_9 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # FakeClock's default start


class Runs:
    """A kind that records each run; `hold` keeps runs active until released."""

    def __init__(self) -> None:
        self.started: list[tuple[int, Any]] = []
        self.hold = False
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self, ctx: Any, payload: Any) -> Any:
        self.started.append((ctx.id, ctx.schedule_id))
        if self.hold:
            await self.release.wait()
        if self.fail:
            raise RuntimeError("the backup disk is full")
        return payload


@pytest.fixture
def runs() -> Runs:
    return Runs()


async def open_engine(db_path: Path, clock: FakeClock, runs: Runs, start: bool = True) -> Engine:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=1))
    eng.register("job", runs, retry=RetryPolicy.none())
    if start:
        await eng.start()
    return eng


async def step(clock: FakeClock, seconds: float, every: float = 1.0) -> None:
    """Let time pass in steps, as a running machine would, giving the loop a turn each."""
    remaining = seconds
    while remaining > 0:
        clock.advance(min(every, remaining))
        remaining -= every
        for _ in range(5):
            await asyncio.sleep(0)


@pytest.fixture
async def eng(db_path: Path, clock: FakeClock, runs: Runs) -> Any:
    engine = await open_engine(db_path, clock, runs)
    yield engine
    await engine.stop(grace=0)


async def test_given_a_cron_schedule_then_it_fires_at_each_instant_and_each_run_carries_the_schedule(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    sid = await eng.schedules.add("job", {"n": 1}, cron="*/15 * * * *", tz="UTC", name="sync")
    s = eng.schedules.get(sid)
    assert s is not None and s.next_fire == MONDAY_9 + timedelta(minutes=15)
    assert s.trigger_text == "Every 15 minutes"
    await step(clock, 15 * 60, every=30)
    await until(lambda: len(runs.started) == 1)
    await step(clock, 15 * 60, every=30)
    await until(lambda: len(runs.started) == 2)
    assert {sch for _, sch in runs.started} == {sid}
    s = eng.schedules.get(sid)
    assert s is not None and s.run_count == 2 and s.next_fire == MONDAY_9 + timedelta(minutes=45)
    hist = await eng.history(schedule_id=sid)
    await until(lambda: len(eng.tasks(schedule_id=sid)) == 0)
    hist = await eng.history(schedule_id=sid)
    assert [r.tags["trigger"] for r in hist] == ["schedule", "schedule"] and hist[0].label == "sync"
    kinds = [e.kind for e in eng.events_of(hist[0].id)]
    assert "schedule_fired" in kinds


async def test_given_six_fields_then_the_first_is_seconds(eng: Engine, clock: FakeClock, runs: Runs) -> None:
    sid = await eng.schedules.add("job", cron="30 * * * * *", tz="UTC")
    assert eng.schedules.get(sid).next_fire == MONDAY_9 + timedelta(seconds=30)  # type: ignore[union-attr]
    await step(clock, 30)
    await until(lambda: len(runs.started) == 1)


async def test_given_every_then_it_is_fixed_rate_from_creation_or_from_start_at(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    a = await eng.schedules.add("job", "a", every=600)
    b = await eng.schedules.add("job", "b", every=600, start_at=MONDAY_9 + timedelta(seconds=60))
    assert eng.schedules.get(a).next_fire == MONDAY_9 + timedelta(seconds=600)  # type: ignore[union-attr]
    assert eng.schedules.get(b).next_fire == MONDAY_9 + timedelta(seconds=60)  # type: ignore[union-attr]  # start_at fires
    await step(clock, 660, every=20)
    await until(lambda: len(runs.started) == 3)  # b at 60 and 660, a at 600
    assert eng.schedules.get(b).next_fire == MONDAY_9 + timedelta(seconds=1260)  # type: ignore[union-attr]


async def test_given_a_one_shot_then_it_fires_once_and_ends(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    sid = await eng.schedules.add("job", at=MONDAY_9 + timedelta(minutes=5))
    await step(clock, 600, every=30)
    await until(lambda: len(runs.started) == 1)
    s = eng.schedules.get(sid)
    assert s is not None and s.ended and s.next_fire is None and s.run_count == 1


async def test_given_a_time_zone_then_cron_fires_on_that_zones_wall_clock(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    sid = await eng.schedules.add("job", cron="0 9 * * *", tz="America/New_York")
    nxt = eng.schedules.get(sid).next_fire  # type: ignore[union-attr]
    assert nxt is not None and nxt.astimezone(ZoneInfo("America/New_York")).hour == 9
    assert nxt == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)  # 09:00 EST is 14:00 UTC


async def test_given_overlap_skip_then_a_fire_while_running_is_recorded_as_skipped(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    runs.hold = True
    sid = await eng.schedules.add("job", every=60, overlap="skip")
    await step(clock, 60)
    await until(lambda: len(runs.started) == 1)
    it = eng.events()
    await step(clock, 60)
    await until(lambda: eng.counts()["skipped"] == 1)
    skipped = (await eng.history(schedule_id=sid, states=["skipped"]))[0]
    assert "previous run" in (skipped.error or "")
    assert len(runs.started) == 1
    async for ev in it:
        if ev.kind == "schedule_skipped":
            assert ev.schedule_id == sid
            break
    runs.release.set()


@pytest.mark.parametrize("overlap", ["allow", "queue", "replace"])
async def test_given_overlap_policies_then_fires_while_running_follow_them(
    eng: Engine, clock: FakeClock, runs: Runs, overlap: str
) -> None:
    runs.hold = True
    sid = await eng.schedules.add("job", every=60, overlap=overlap)
    await step(clock, 60)
    await until(lambda: len(runs.started) == 1)
    first = runs.started[0][0]
    await step(clock, 60)
    await until(lambda: len(eng.tasks(schedule_id=sid)) + eng.counts()["cancelled"] >= 2)
    if overlap == "allow":
        await until(lambda: len(runs.started) == 2)  # both run at once
    elif overlap == "queue":
        second = max(t.id for t in eng.tasks(schedule_id=sid))
        assert eng.get(second).state is TaskState.BLOCKED  # type: ignore[union-attr]  # waits for the first
        await step(clock, 60)
        await until(lambda: eng.counts()["skipped"] == 1)  # at most one extra waits
        runs.hold = False
        runs.release.set()
        await until(lambda: len(runs.started) == 2)
    else:
        await step(clock, 1)  # the cancelled run ignores interruption: the grace ends it
        await until(lambda: eng.get(first).state is TaskState.CANCELLED)  # type: ignore[union-attr]
        await until(lambda: len(runs.started) == 2)
    runs.release.set()


@pytest.mark.parametrize(
    ("misfire", "expected_runs", "note"),
    [("run_once", 1, "missed 3 runs — ran once at"), ("skip", 0, "missed 3 runs — skipped"),
     ("run_all", 3, "missed 3 runs — ran 3 at")],
)  # fmt: skip
async def test_given_downtime_then_the_misfire_policy_decides_what_runs(
    db_path: Path, clock: FakeClock, runs: Runs, misfire: str, expected_runs: int, note: str
) -> None:
    eng = await open_engine(db_path, clock, runs)
    sid = await eng.schedules.add("job", every=3600, misfire=misfire)
    await eng.stop(grace=0)
    clock.advance(3 * 3600 + 600)  # the engine was off for three fires
    eng = await open_engine(db_path, clock, runs)
    await until(lambda: (eng.schedules.get(sid).missed_runs or 0) == 3)  # type: ignore[union-attr]
    s = eng.schedules.get(sid)
    assert s is not None and (s.missed_note or "").startswith(note)
    assert s.next_fire == MONDAY_9 + timedelta(hours=4)  # the next one is still on the hour grid
    if expected_runs:
        await until(lambda: len(runs.started) == expected_runs)
        trig = {r.tags["trigger"] for r in [eng.get(i) for i, _ in runs.started] if r}
        assert trig == {"catch-up"}
    await asyncio.sleep(0.05)
    assert len(runs.started) == expected_runs
    await eng.stop(grace=0)


async def test_given_a_paused_schedule_then_nothing_fires_and_resume_starts_from_now(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    sid = await eng.schedules.add("job", every=60)
    await eng.schedules.pause(sid)
    await step(clock, 300, every=30)
    assert runs.started == [] and eng.schedules.get(sid).paused  # type: ignore[union-attr]
    await eng.schedules.resume(sid)
    s = eng.schedules.get(sid)
    assert s is not None and s.next_fire == MONDAY_9 + timedelta(seconds=360) and s.missed_runs == 0
    await step(clock, 60)
    await until(lambda: len(runs.started) == 1)


@pytest.mark.parametrize("how", ["pause", "remove"])
async def test_given_a_fire_committed_ahead_of_its_instant_when_the_schedule_is_paused_then_that_run_never_starts(
    db_path: Path, clock: FakeClock, runs: Runs, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """On the real clock a fire is committed FIRE_LEAD before its instant; here the lead
    is 30 s of fake time, so the pause lands inside it deterministically."""
    monkeypatch.setattr(schedule_engine, "fire_lead", lambda clock: 30.0)
    eng = await open_engine(db_path, clock, runs)
    try:
        sid = await eng.schedules.add("job", every=60, max_runs=1)
        await step(clock, 40)  # 30 s ahead of the instant at 60 s, the run is committed
        await until(lambda: len(eng.tasks()) == 1)
        early = eng.tasks()[0]
        assert early.schedule_id == sid and early.state is TaskState.PENDING and runs.started == []
        if how == "pause":
            await eng.schedules.pause(sid)
        else:
            await eng.schedules.remove(sid)
        rec = await eng.wait(early.id, timeout=10)
        assert rec.state is TaskState.CANCELLED
        assert rec.error == f"its schedule was {how}d before this run started"
        await step(clock, 120, every=10)
        assert runs.started == []
        if how == "pause":  # the withdrawn run does not count: after resume the schedule runs once
            s = eng.schedules.get(sid)
            assert s is not None and s.run_count == 0 and not s.ended
            await eng.schedules.resume(sid)
            await step(clock, 60, every=10)
            await until(lambda: len(runs.started) == 1)
    finally:
        await eng.stop(grace=0)


async def test_given_run_now_then_a_manual_run_starts_and_the_next_fire_does_not_move(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    sid = await eng.schedules.add("job", cron="0 2 * * *", tz="UTC")
    before = eng.schedules.get(sid).next_fire  # type: ignore[union-attr]
    res = await eng.schedules.run_now(sid)
    rec = await eng.wait(res.id, timeout=10)
    assert rec.tags["trigger"] == "manual" and rec.schedule_id == sid
    assert eng.schedules.get(sid).next_fire == before  # type: ignore[union-attr]


async def test_given_max_runs_and_end_at_then_the_schedule_ends(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    a = await eng.schedules.add("job", every=60, max_runs=2)
    b = await eng.schedules.add("job", every=60, end_at=MONDAY_9 + timedelta(seconds=150))
    await step(clock, 400, every=20)
    await until(lambda: len(runs.started) == 4)
    await asyncio.sleep(0.05)
    assert len(runs.started) == 4
    assert eng.schedules.get(a).ended and eng.schedules.get(b).ended  # type: ignore[union-attr]


async def test_given_failing_runs_then_the_schedule_goes_on_until_pause_after_failures(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    runs.fail = True
    sid = await eng.schedules.add("job", every=60, pause_after_failures=3)
    await step(clock, 120, every=20)
    await until(lambda: eng.schedules.get(sid).failure_streak == 2)  # type: ignore[union-attr]
    s = eng.schedules.get(sid)
    assert s is not None and not s.paused and s.last_result == "failed"  # a failure never ends it
    await step(clock, 60, every=20)
    await until(lambda: eng.schedules.get(sid).paused)  # type: ignore[union-attr]


async def test_given_the_clock_is_set_back_then_no_instant_fires_twice(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    await eng.schedules.add("job", cron="*/10 * * * *", tz="UTC")
    await step(clock, 600, every=30)
    await until(lambda: len(runs.started) == 1)
    clock.set(MONDAY_9 + timedelta(minutes=2))  # back by 8 minutes
    await step(clock, 600, every=30)  # 09:10 again: it already fired, so it does not
    assert len(runs.started) == 1
    await step(clock, 480, every=30)
    await until(lambda: len(runs.started) == 2)  # then 09:20
    await step(clock, 60)
    assert len(runs.started) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"cron": "61 * * * *"}, "cron"), ({"cron": "0 9 * * *", "tz": "Mars/Olympus"}, "tz"),
     ({"every": 0}, "every"), ({"every": -5}, "every"), ({}, "trigger"), ({"cron": "* * * * *", "every": 5}, "trigger"),
     ({"every": 60, "start_at": MONDAY_9, "end_at": MONDAY_9 - timedelta(hours=1)}, "end_at"),
     ({"every": 60, "overlap": "stack"}, "overlap"), ({"every": 60, "misfire": "later"}, "misfire"),
     ({"every": 60, "max_runs": 0}, "max_runs"), ({"at": MONDAY_9 - timedelta(days=1)}, "at"),
     ({"every": 60, "run_at": MONDAY_9}, "run_at")],
)  # fmt: skip
async def test_given_a_bad_schedule_then_invalid_schedule_names_the_problem_and_nothing_is_written(
    eng: Engine, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSchedule) as info:
        await eng.schedules.add("job", **kwargs)
    assert info.value.field == field
    assert eng.schedules.list() == []
    if field == "cron":
        assert "minute must be 0–59, got 61" in str(info.value)


async def test_given_a_payload_the_kind_refuses_then_adding_the_schedule_fails(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("typed", Runs(), schema={"type": "object", "required": ["path"]})
    with pytest.raises(InvalidSubmission, match="path"):
        await eng.schedules.add("typed", {}, every=60)
    with pytest.raises(ScheduleNotFound, match="schedule 9 does not exist"):
        await eng.schedules.pause(9)
    await eng.stop()


async def test_given_updates_and_removal_then_the_schedule_follows(
    eng: Engine, clock: FakeClock, runs: Runs
) -> None:
    sid = await eng.schedules.add("job", every=60, name="old")
    s = await eng.schedules.update(sid, every=300, name="new", priority=10)
    assert s.every == 300 and s.name == "new" and s.options["priority"] == 10
    assert s.next_fire == MONDAY_9 + timedelta(seconds=300)
    await eng.schedules.remove(sid)
    assert eng.schedules.get(sid) is None
    await step(clock, 600, every=60)
    assert runs.started == []


async def test_given_add_many_then_all_are_added_in_one_transaction(eng: Engine) -> None:
    ids = await eng.schedules.add_many([ScheduleSpec("job", i, every=60 + i) for i in range(50)])
    assert len(ids) == 50 and len(eng.schedules.list()) == 50
    with pytest.raises(InvalidSchedule):
        await eng.schedules.add_many([ScheduleSpec("job", every=60), ScheduleSpec("job", every=-1)])
    assert len(eng.schedules.list()) == 50


async def test_given_a_client_adds_a_schedule_then_the_running_engine_fires_it(
    eng: Engine, clock: FakeClock, runs: Runs, db_path: Path
) -> None:
    async with Client.open(db_path) as client:
        sid = await client.schedules.add("job", every=60)
        await until(lambda: eng.schedules.get(sid) is not None)
        assert [s.id for s in client.schedules.list()] == [sid]
        await client.schedules.pause(sid)
        await until(lambda: eng.schedules.get(sid).paused)  # type: ignore[union-attr]
    await step(clock, 120, every=20)
    assert runs.started == []


async def test_given_the_real_clock_then_a_fire_is_committed_before_its_instant_and_starts_at_it(
    db_path: Path,
) -> None:
    import time

    starts: list[tuple[int, float]] = []
    hold = asyncio.Event()

    async def job(ctx: Any, payload: Any) -> None:
        starts.append((ctx.id, time.time()))
        if payload == "hold":
            await hold.wait()

    eng = await Engine.open(db_path)
    eng.register("job", job)
    await eng.start()
    instant = time.time() + 0.3
    await eng.schedules.add("job", "hold", every=0.2, start_at=datetime.fromtimestamp(instant, UTC))
    await until(lambda: len(starts) == 1)
    task_id, started = starts[0]
    rec = eng.get(task_id)
    assert rec is not None and rec.run_at is not None
    assert started >= instant and rec.run_at.timestamp() == pytest.approx(instant, abs=1e-6)
    # its run is still active at the next fires: the overlap policy (skip) holds
    await asyncio.sleep(0.5)
    assert len(starts) == 1
    hold.set()
    await eng.stop()
