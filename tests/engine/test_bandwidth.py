"""Bandwidth limits: a global byte budget (base, weekly schedule, temporary override) and
per-task limits, drawn from by handlers through ctx.throttle."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core import Client, Engine, EngineConfig, InvalidArgument, IoBudget, TaskState
from core.bandwidth import BandwidthWindow, parse_days
from core.testing import FakeClock
from tests.conftest import until

CHUNK = 64 * 1024
MB = 1_000_000


class Mover:
    """A network-like handler: throttles then 'sends' chunks, recording bytes moved."""

    def __init__(self) -> None:
        self.moved: dict[int, int] = {}
        self.interrupted: list[int] = []

    async def __call__(self, ctx: Any, payload: dict[str, Any]) -> int:
        self.moved.setdefault(ctx.id, 0)
        for _ in range(payload["chunks"]):
            try:
                await ctx.throttle(CHUNK)
            except Exception:
                self.interrupted.append(ctx.id)
                raise
            self.moved[ctx.id] += CHUNK
        return self.moved[ctx.id]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def open_engine(db_path: Path, clock: FakeClock, **config: Any) -> tuple[Engine, Mover]:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, **config))
    mover = Mover()
    eng.register("move", mover)
    await eng.start()
    return eng, mover


async def run_for(clock: FakeClock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await settle()


async def test_given_a_global_limit_when_two_tasks_move_data_then_together_they_stay_within_it(
    db_path: Path, clock: FakeClock
) -> None:
    eng, mover = await open_engine(db_path, clock)
    await eng.set_bandwidth_limit(1 * MB)
    a = (await eng.submit("move", {"chunks": 1000})).id
    b = (await eng.submit("move", {"chunks": 1000})).id
    await until(lambda: len(mover.moved) == 2)
    await settle()
    start = sum(mover.moved.values())
    await run_for(clock, 10)
    moved = sum(mover.moved.values()) - start
    assert 10 * MB - 2 * CHUNK <= moved <= 10 * MB + 2 * CHUNK + 250_000  # rate x time, + a burst
    assert mover.moved[a] > 3 * MB and mover.moved[b] > 3 * MB  # both make progress
    status = eng.bandwidth()
    assert status.limit == 1 * MB and status.source == "limit" and status.waiting >= 1
    await eng.stop(grace=0)


async def test_given_no_limit_when_a_task_throttles_then_it_never_waits(
    db_path: Path, clock: FakeClock
) -> None:
    eng, _ = await open_engine(db_path, clock)
    res = await eng.submit("move", {"chunks": 500})
    rec = await eng.wait(res.id, timeout=10)  # no clock advance needed
    assert rec.result == 500 * CHUNK
    await eng.stop(grace=0)


async def test_given_a_payload_limit_when_the_task_moves_data_then_it_keeps_to_its_own_limit(
    db_path: Path, clock: FakeClock
) -> None:
    eng, mover = await open_engine(db_path, clock)
    slow = (await eng.submit("move", {"chunks": 1000, "bandwidth_limit": 200_000})).id
    fast = (await eng.submit("move", {"chunks": 40})).id
    assert (await eng.wait(fast, timeout=10)).state is TaskState.COMPLETED  # unaffected by the other
    await until(lambda: slow in mover.moved)
    await settle()
    start = mover.moved[slow]
    await run_for(clock, 5)
    assert 1_000_000 - CHUNK <= mover.moved[slow] - start <= 1_000_000 + 2 * CHUNK
    await eng.stop(grace=0)


async def test_given_a_bad_payload_limit_when_the_task_throttles_then_it_fails_naming_the_field(
    db_path: Path, clock: FakeClock
) -> None:
    eng, _ = await open_engine(db_path, clock)
    res = await eng.submit("move", {"chunks": 1, "bandwidth_limit": "fast"})
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.FAILED and "bandwidth_limit" in (rec.error or "")
    await eng.stop(grace=0)


async def test_given_a_waiting_task_when_the_limit_is_lifted_then_it_continues_at_once(
    db_path: Path, clock: FakeClock
) -> None:
    eng, _ = await open_engine(db_path, clock)
    await eng.set_bandwidth_limit(1000)  # 1 KB/s: a 64 KiB chunk takes about a minute
    res = await eng.submit("move", {"chunks": 20})
    await until(lambda: eng.bandwidth().waiting == 1)
    await eng.set_bandwidth_limit(None)
    rec = await eng.wait(res.id, timeout=10)  # without moving the clock
    assert rec.result == 20 * CHUNK
    await eng.stop(grace=0)


async def test_given_a_task_waiting_for_bandwidth_when_it_is_paused_then_it_stops_promptly(
    db_path: Path, clock: FakeClock
) -> None:
    eng, mover = await open_engine(db_path, clock, preempt_grace=30)
    await eng.set_bandwidth_limit(1000)
    res = await eng.submit("move", {"chunks": 20})
    await until(lambda: eng.bandwidth().waiting == 1)
    await eng.pause(res.id)
    await until(lambda: eng.get(res.id).state is TaskState.PAUSED)  # type: ignore[union-attr]
    assert mover.interrupted == [res.id]
    await eng.stop(grace=0)


async def test_given_a_temporary_override_when_it_ends_then_the_base_limit_applies_again(
    db_path: Path, clock: FakeClock
) -> None:
    eng, _ = await open_engine(db_path, clock)
    await eng.set_bandwidth_limit(1 * MB)
    until_at = clock.now() + timedelta(minutes=30)
    await eng.set_bandwidth_limit(5 * MB, until=until_at)
    status = eng.bandwidth()
    assert status.limit == 5 * MB and status.source == f"until {until_at:%H:%M}" and status.base == 1 * MB
    clock.advance(30 * 60 + 1)
    await settle()
    status = eng.bandwidth()
    assert status.limit == 1 * MB and status.source == "limit" and status.override is None
    await eng.stop(grace=0)


async def test_given_a_weekly_schedule_then_the_limit_follows_the_windows(
    db_path: Path, clock: FakeClock
) -> None:
    # The fake clock starts on Monday 2026-01-05 at 09:00 UTC.
    eng, _ = await open_engine(db_path, clock)
    await eng.set_bandwidth_limit(10 * MB)
    await eng.set_bandwidth_schedule(
        [("mon-fri", "09:00", "17:00", 1 * MB), ("sat", "22:00", "02:00", None)], tz="UTC"
    )
    assert (eng.bandwidth().limit, eng.bandwidth().source) == (1 * MB, "schedule")
    clock.advance_to(datetime.fromisoformat("2026-01-05T17:00:00+00:00"))
    await settle()
    assert (eng.bandwidth().limit, eng.bandwidth().source) == (10 * MB, "limit")
    clock.advance_to(datetime.fromisoformat("2026-01-10T23:00:00+00:00"))  # Saturday night
    await settle()
    assert (eng.bandwidth().limit, eng.bandwidth().source) == (None, "schedule")
    clock.advance_to(datetime.fromisoformat("2026-01-11T01:59:00+00:00"))  # past midnight, still on
    await settle()
    assert eng.bandwidth().limit is None
    clock.advance_to(datetime.fromisoformat("2026-01-11T02:00:00+00:00"))
    await settle()
    assert eng.bandwidth().limit == 10 * MB
    await eng.stop(grace=0)


async def test_given_a_schedule_when_a_window_opens_then_a_waiting_transfer_speeds_up(
    db_path: Path, clock: FakeClock
) -> None:
    clock.set(datetime.fromisoformat("2026-01-05T08:59:00+00:00"))
    eng, _ = await open_engine(db_path, clock)
    await eng.set_bandwidth_limit(1000)
    await eng.set_bandwidth_schedule([("mon-fri", "09:00", "17:00", None)], tz="UTC")
    res = await eng.submit("move", {"chunks": 20})
    await until(lambda: eng.bandwidth().waiting == 1)
    clock.advance(61)  # the window opens: unlimited
    rec = await eng.wait(res.id, timeout=10)
    assert rec.result == 20 * CHUNK
    await eng.stop(grace=0)


async def test_bandwidth_settings_are_stored(db_path: Path, clock: FakeClock) -> None:
    eng, _ = await open_engine(db_path, clock)
    await eng.set_bandwidth_limit(2 * MB)
    await eng.set_bandwidth_limit(3 * MB, until=600)
    await eng.set_bandwidth_schedule([("weekends", "00:00", "23:59", 4 * MB)], tz="Europe/Paris")
    await eng.stop()
    eng, _ = await open_engine(db_path, clock)
    status = eng.bandwidth()
    assert status.base == 2 * MB and status.override == 3 * MB and status.limit == 3 * MB
    assert status.tz == "Europe/Paris"
    assert status.schedule == (BandwidthWindow(frozenset({5, 6}), *_times("00:00", "23:59"), 4 * MB),)
    await eng.stop()


def _times(a: str, b: str) -> tuple[Any, Any]:
    from datetime import time

    return time.fromisoformat(a), time.fromisoformat(b)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda e: e.set_bandwidth_limit(-5), "bps"),
        (lambda e: e.set_bandwidth_limit("fast"), "bps"),
        (lambda e: e.set_bandwidth_limit(1000, until=datetime(2030, 1, 1)), "timezone-aware"),
        (lambda e: e.set_bandwidth_schedule([("funday", "09:00", "10:00", 1)]), "unknown day"),
        (lambda e: e.set_bandwidth_schedule([("mon", "25:00", "10:00", 1)]), "start"),
        (lambda e: e.set_bandwidth_schedule([("mon", "09:00", "10:00")]), "days, start, end, bps"),
        (lambda e: e.set_bandwidth_schedule("mon 9-5"), "windows"),
        (lambda e: e.set_bandwidth_schedule([], tz="Mars/Olympus"), "time zone"),
    ],
)
async def test_bad_bandwidth_settings_are_refused_and_nothing_changes(
    db_path: Path, clock: FakeClock, call: Any, match: str
) -> None:
    eng, _ = await open_engine(db_path, clock)
    await eng.set_bandwidth_limit(1 * MB)
    with pytest.raises(InvalidArgument, match=match):
        await call(eng)
    assert eng.bandwidth().limit == 1 * MB and eng.bandwidth().schedule == ()
    await eng.stop(grace=0)


def test_a_window_from_midnight_to_midnight_covers_the_whole_day() -> None:
    window = BandwidthWindow.of(("sat", "00:00", "24:00", 1000))
    assert window.covers(datetime.fromisoformat("2026-01-10T00:00:00"))
    assert window.covers(datetime.fromisoformat("2026-01-10T23:59:59"))
    assert not window.covers(datetime.fromisoformat("2026-01-11T00:00:00"))
    assert not window.covers(datetime.fromisoformat("2026-01-09T23:59:59"))


def test_days_are_parsed_from_names_ranges_and_numbers() -> None:
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days("Sat, sun") == frozenset({5, 6})
    assert parse_days("daily") == frozenset(range(7))
    assert parse_days([0, 2]) == frozenset({0, 2})
    with pytest.raises(InvalidArgument, match=r"0\.\.6"):
        parse_days([7])


def thread_mover(ctx: Any, payload: dict[str, Any]) -> int:
    for _ in range(payload["chunks"]):
        ctx.throttle(CHUNK)
    return payload["chunks"] * CHUNK


async def test_given_a_thread_handler_when_it_throttles_then_it_waits_for_the_limit_too(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("tmove", thread_mover, run_in="thread")
    await eng.start()
    await eng.set_bandwidth_limit(CHUNK)  # one chunk a second (after the first burst)
    res = await eng.submit("tmove", {"chunks": 5})
    await until(lambda: eng.bandwidth().waiting == 1)
    assert eng.get(res.id).state is TaskState.RUNNING  # type: ignore[union-attr]
    for _ in range(10):
        clock.advance(1)
        await asyncio.sleep(0.01)  # let the thread's next call reach the loop
        if eng.get(res.id).state is TaskState.COMPLETED:  # type: ignore[union-attr]
            break
    assert (await eng.wait(res.id, timeout=10)).result == 5 * CHUNK
    await eng.stop(grace=0)


async def test_given_a_limit_when_network_tasks_declare_more_than_it_allows_then_one_waits(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(
        db_path, EngineConfig(clock=clock, resource_sampler=lambda: {"net_tx": 0.0}, max_concurrency=4)
    )

    async def hold(ctx: Any, payload: Any) -> None:
        await asyncio.Event().wait()

    eng.register("upload", hold, io=IoBudget(net_tx=600_000))
    await eng.start()
    await eng.set_bandwidth_limit(1 * MB)
    first = (await eng.submit("upload")).id
    second = (await eng.submit("upload")).id
    await until(lambda: eng.get(first).state is TaskState.RUNNING)  # type: ignore[union-attr]
    await settle()
    rec = eng.get(second)
    assert rec is not None and rec.state is TaskState.PENDING
    assert rec.wait_reason is not None and rec.wait_reason.startswith("IO busy: network out")
    await eng.set_bandwidth_limit(None)  # the limit lifted, the capacity is the learned one again
    await until(lambda: eng.get(second).state is TaskState.RUNNING)  # type: ignore[union-attr]
    await eng.stop(grace=0)


async def test_a_client_changes_bandwidth_settings_through_the_engine(
    db_path: Path, clock: FakeClock
) -> None:
    eng, _ = await open_engine(db_path, clock)
    client = await Client.open(db_path)
    await client.set_bandwidth_limit(750_000)
    await client.set_bandwidth_schedule([("mon", "01:00", "02:00", 1000)], tz="UTC")
    with pytest.raises(InvalidArgument, match="bps"):
        await client.set_bandwidth_limit(0)
    await until(lambda: eng.bandwidth().base == 750_000 and len(eng.bandwidth().schedule) == 1)
    await client.close()
    await eng.stop(grace=0)
