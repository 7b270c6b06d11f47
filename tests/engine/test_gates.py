"""Gates besides slots (SPEC §4.1, §4.3, §3.4): IO budgets against sampled throughput and
capacities, pressure, rate limits; no head-of-line blocking; why a ready task waits.

Everything is driven by a FakeClock and injected samplers and pressure sources: the engine
samples once per second of its clock, so moving the clock one second takes one sample."""

from __future__ import annotations

import asyncio
import math
import os
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig, InvalidArgument, IoBudget, Priority, TaskState
from core import resources as resources_module
from core.resources import FLOORS, RESOURCES, PsutilSampler
from core.testing import FakeClock
from tests.conftest import until

MB = 1_000_000


class FakeSampler:
    """The resource sampler: returns `rates` (bytes/s) and counts its calls."""

    def __init__(self) -> None:
        self.rates: dict[str, float] = dict.fromkeys(RESOURCES, 0.0)
        self.calls = 0

    def __call__(self) -> dict[str, float]:
        self.calls += 1
        return dict(self.rates)


class Level:
    """A pressure source whose value the test sets."""

    def __init__(self, name: str, value: float = 0.0) -> None:
        self.name = name
        self.value = value

    def __call__(self) -> float:
        return self.value


class Hold:
    """A handler whose runs hold their slot until released; records the ids it started."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.released: set[int] = set()

    async def __call__(self, ctx: Any, payload: Any) -> None:
        self.started.append(ctx.id)
        while ctx.id not in self.released:
            await ctx.yield_point()
            await asyncio.sleep(0.001)


async def noop(ctx: Any, payload: Any) -> None:
    return None


Make = Callable[..., Awaitable[Engine]]


@pytest.fixture
def sampler() -> FakeSampler:
    return FakeSampler()


@pytest.fixture
def hold() -> Hold:
    return Hold()


@pytest.fixture
async def make(db_path: Path, clock: FakeClock, sampler: FakeSampler, hold: Hold) -> AsyncIterator[Make]:
    """Opens and starts engines on one database, a fake clock and the fake sampler, with kinds
    "hold" and "other" (run until released), "disk" (the same, with an IO budget) and "quick"
    (no-op)."""
    opened: list[Engine] = []

    async def open_engine(**config: Any) -> Engine:
        config.setdefault("preempt_at", None)  # these tests are about the other gates
        eng = await Engine.open(db_path, EngineConfig(clock=clock, resource_sampler=sampler, **config))
        opened.append(eng)
        eng.register("hold", hold)
        eng.register("other", hold)
        eng.register("disk", hold, io=IoBudget(disk_write=10 * MB))
        eng.register("quick", noop)
        await eng.start()
        return eng

    yield open_engine
    for eng in opened:
        await eng.stop(grace=0)


async def ticks(n: int = 20) -> None:
    """Let the loop run a few rounds: dispatch decisions are made in call_soon callbacks."""
    for _ in range(n):
        await asyncio.sleep(0)


async def sample(clock: FakeClock, sampler: FakeSampler, **rates: float) -> None:
    """Move the clock one second, so the engine takes exactly one sample of `rates`."""
    sampler.rates.update(rates)
    calls = sampler.calls
    clock.advance(1)
    await until(lambda: sampler.calls == calls + 1)
    await ticks()


def state(eng: Engine, task_id: int) -> TaskState:
    rec = eng.get(task_id)
    assert rec is not None
    return rec.state


def started_at(eng: Engine, task_id: int) -> Any:
    rec = eng.get(task_id)
    assert rec is not None
    return rec.started_at


# -- IO budgets ------------------------------------------------------------------------------


async def test_given_a_resource_already_above_the_threshold_then_one_task_using_it_still_runs(
    make: Make, clock: FakeClock, sampler: FakeSampler, hold: Hold
) -> None:
    eng = await make(io_capacity={"disk_write": 100 * MB})
    await sample(clock, sampler, disk_write=95 * MB)
    assert eng.io_status()["disk_write"]["used"] == 95 * MB

    first = await eng.submit("disk")
    second = await eng.submit("disk")
    await until(lambda: hold.started == [first.id])
    await ticks()
    assert state(eng, second.id) is TaskState.PENDING

    hold.released.add(first.id)  # the one user goes: the next may always run
    await until(lambda: hold.started == [first.id, second.id])


async def test_given_usage_plus_budget_under_the_threshold_then_tasks_share_the_resource(
    make: Make, clock: FakeClock, sampler: FakeSampler, hold: Hold
) -> None:
    eng = await make(io_capacity={"disk_write": 100 * MB})
    await sample(clock, sampler, disk_write=50 * MB)
    a = await eng.submit("disk", io=IoBudget(disk_write=10 * MB))
    await until(lambda: hold.started == [a.id])
    b = await eng.submit("disk", io=IoBudget(disk_write=29 * MB))  # 50 + 29 <= 80: fits
    await until(lambda: hold.started == [a.id, b.id])
    c = await eng.submit("disk", io=IoBudget(disk_write=31 * MB))  # 50 + 31 > 80: waits
    await ticks()
    assert state(eng, c.id) is TaskState.PENDING
    # The disk calms down (smoothed: 0.7 * 50 = 35 MB/s), below the running budgets (39).
    await sample(clock, sampler, disk_write=0)
    await until(lambda: hold.started == [a.id, b.id, c.id])  # 39 + 31 <= 80
    status = eng.io_status()["disk_write"]
    assert status["measured"] == pytest.approx(35 * MB) and status["used"] == 70 * MB
    assert status["tasks"] == 3
    d = await eng.submit("disk", io=IoBudget(disk_write=MB))  # 70 + 1 <= 80
    await until(lambda: d.id in hold.started)
    e = await eng.submit("disk", io=IoBudget(disk_write=10 * MB))  # 71 + 10 > 80
    await ticks()
    assert state(eng, e.id) is TaskState.PENDING


async def test_given_throughput_falls_then_the_learned_capacity_stays_the_highest_seen(
    make: Make, clock: FakeClock, sampler: FakeSampler, hold: Hold
) -> None:
    eng = await make()
    for _ in range(3):
        await sample(clock, sampler, disk_write=100 * MB)
    for _ in range(6):
        await sample(clock, sampler, disk_write=10 * MB)
    status = eng.io_status()["disk_write"]
    expected = 10 * MB + 90 * MB * 0.7**6
    assert status["capacity"] == pytest.approx(100 * MB)
    assert status["measured"] == pytest.approx(expected) and status["used"] == pytest.approx(expected)
    assert status["configured"] == 0.0

    # Gating uses that capacity: 20.6 MB/s in use + 55 MB/s fits under 80% of 100 MB/s
    # (it would not if the capacity had been learned as what the disk does now).
    a = await eng.submit("disk", io=IoBudget(disk_write=10 * MB))
    await until(lambda: hold.started == [a.id])
    b = await eng.submit("disk", io=IoBudget(disk_write=55 * MB))
    await until(lambda: hold.started == [a.id, b.id])


async def test_given_a_quiet_machine_then_capacities_are_never_learned_below_the_floors(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    eng = await make()
    await sample(clock, sampler, disk_read=MB, disk_write=0, net_rx=1000, net_tx=0)
    status = eng.io_status()
    assert {r: status[r]["capacity"] for r in RESOURCES} == FLOORS
    assert status["disk_read"]["measured"] == MB and status["net_rx"]["measured"] == 1000


async def test_given_two_samples_then_the_measured_rate_is_their_ewma_with_alpha_0_3(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    eng = await make()
    await sample(clock, sampler, net_tx=100 * MB)
    assert eng.io_status()["net_tx"]["measured"] == pytest.approx(100 * MB)
    await sample(clock, sampler, net_tx=200 * MB)
    assert eng.io_status()["net_tx"]["measured"] == pytest.approx(0.3 * 200 * MB + 0.7 * 100 * MB)


async def test_given_the_clock_moves_then_the_sampler_is_read_once_per_second_of_it(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    await make()
    await ticks()
    calls = sampler.calls
    clock.advance(0.5)
    await ticks()
    assert sampler.calls == calls
    clock.advance(0.5)
    await until(lambda: sampler.calls == calls + 1)
    clock.advance(0.999)
    await ticks()
    assert sampler.calls == calls + 1


async def test_given_a_configured_capacity_then_it_wins_over_the_learned_one_and_persists(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    eng = await make()
    await sample(clock, sampler, disk_write=300 * MB)
    await eng.set_io_capacity("disk_write", 180 * MB)
    status = eng.io_status()["disk_write"]
    assert status["capacity"] == 180 * MB and status["configured"] == 1.0
    with pytest.raises(InvalidArgument, match=r"^resource: .*'disk'"):
        await eng.set_io_capacity("disk", MB)
    with pytest.raises(InvalidArgument, match=r"^bps: "):
        await eng.set_io_capacity("disk_write", -1)
    await eng.stop()

    eng = await make()
    assert eng.io_status()["disk_write"]["capacity"] == 180 * MB
    await eng.set_io_capacity("disk_write", None)
    assert eng.io_status()["disk_write"]["capacity"] == FLOORS["disk_write"]  # nothing learned yet


def test_given_a_counter_that_goes_backwards_then_the_psutil_sampler_gives_no_sample_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(resources_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))

    class Scripted(PsutilSampler):
        def __init__(self, readings: list[dict[str, float]]) -> None:
            super().__init__()
            self.readings = readings

        def _counters(self) -> dict[str, float]:
            return self.readings.pop(0)

    base = {"disk_read": 1000.0, "disk_write": 5000.0, "net_rx": 0.0, "net_tx": 0.0}
    sampler = Scripted([base, {**base, "disk_read": 3000.0, "disk_write": 10.0, "net_rx": 400.0}])
    assert sampler() == {}  # no previous reading: nothing to compare with
    now[0] += 2.0
    assert sampler() == {"disk_read": 1000.0, "net_rx": 200.0, "net_tx": 0.0}


def test_given_a_real_disk_write_then_the_psutil_sampler_measures_it(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    if psutil.disk_io_counters(perdisk=False) is None:
        pytest.skip("psutil.disk_io_counters() returns None here: no disk counters to sample")
    mounts = [p for p in psutil.disk_partitions(all=True) if str(tmp_path).startswith(p.mountpoint)]
    if mounts and max(mounts, key=lambda p: len(p.mountpoint)).fstype in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is in memory (tmpfs): writing there reaches no disk counter")
    sampler = PsutilSampler()
    assert sampler() == {}
    block = os.urandom(1 << 20)
    with open(tmp_path / "blob", "wb") as f:
        for _ in range(64):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    rates = sampler()  # the rate over the write: bytes written since the first call / elapsed
    assert set(rates) <= set(RESOURCES)
    assert rates.get("disk_write", 0.0) > 0


@pytest.mark.parametrize(
    "capacity", [{"disk": 100 * MB}, {"disk_write": -5.0}, {"net_rx": math.nan}, {"net_tx": "fast"}]
)
def test_given_a_bad_io_capacity_in_the_config_then_invalid_argument_names_it(capacity: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"^io_capacity"):
        EngineConfig(io_capacity=capacity)


# -- pressure ----------------------------------------------------------------------------------


async def test_given_pressure_then_each_priority_band_waits_at_its_own_level(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    level = Level("memory")
    eng = await make(max_concurrency=16, pressure_sources=(level,))

    async def check(expected: dict[int, bool]) -> None:
        """Submit one task per priority; those expected to run complete, the others wait."""
        ids = {p: (await eng.submit("quick", priority=p)).id for p in expected}
        for p, runs in expected.items():
            if runs:
                await eng.wait(ids[p], timeout=10)
        await ticks()
        assert {p: state(eng, ids[p]) is TaskState.COMPLETED for p in expected} == expected

    level.value = 0.5
    await sample(clock, sampler)
    assert eng.pressure == (0.5, "memory")
    await check({255: False, 192: False, 191: True, 128: True, 127: True, 0: True})
    level.value = 0.75
    await sample(clock, sampler)
    await check({191: False, 128: False, 127: True, 64: True})
    level.value = 1.0
    await sample(clock, sampler)
    await check({Priority.HIGH: True, Priority.HIGH + 63: True})

    level.value = 0.7499
    await sample(clock, sampler)
    await until(lambda: eng.counts()["pending"] == 2)  # the NORMAL band ran, LOW/IDLE wait
    assert {r.priority for r in eng.tasks(states=["pending"])} == {255, 192}
    level.value = 0.4999
    await sample(clock, sampler)
    await until(lambda: eng.counts()["pending"] == 0)
    assert eng.counts()["completed"] == 12


async def test_given_several_pressure_sources_then_the_highest_counts_and_names_itself(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    def cpu() -> float:
        return 0.2

    memory = Level("memory", 0.6)
    eng = await make(pressure_sources=(cpu, memory))
    battery = Level("unused", 0.3)
    eng.add_pressure_source("battery", battery)
    await sample(clock, sampler)
    assert eng.pressure == (0.6, "memory")
    battery.value = 0.9
    await sample(clock, sampler)
    assert eng.pressure == (0.9, "battery")
    eng.remove_pressure_source("battery")
    await sample(clock, sampler)
    assert eng.pressure == (0.6, "memory")
    with pytest.raises(InvalidArgument, match=r"^name: "):
        eng.add_pressure_source("", battery)
    with pytest.raises(InvalidArgument, match=r"^source: "):
        eng.add_pressure_source("x", 0.5)  # type: ignore[arg-type]


async def test_given_a_pressure_source_that_raises_then_it_is_ignored_and_the_engine_goes_on(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    def broken() -> float:
        raise OSError("sensor unplugged")

    memory = Level("memory", 0.6)
    eng = await make(pressure_sources=(broken, memory))
    eng.add_pressure_source("nan", lambda: math.nan)
    await sample(clock, sampler)
    assert eng.pressure == (0.6, "memory")
    low = await eng.submit("quick", priority=Priority.LOW)
    await ticks()
    assert state(eng, low.id) is TaskState.PENDING
    memory.value = 0.0
    await sample(clock, sampler)  # sampling went on after the failure
    assert eng.pressure == (0.0, None)
    assert (await eng.wait(low.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_pressure_then_the_snapshot_reports_it(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    eng = await make(pressure_sources=(Level("memory", 0.8),))
    await sample(clock, sampler)
    assert eng.pressure == (0.8, "memory")
    assert eng.snapshot().pressure == 0.8


# -- rate limits -------------------------------------------------------------------------------


async def test_given_a_rate_limit_then_tasks_start_exactly_when_their_token_is_due(
    make: Make, clock: FakeClock
) -> None:
    eng = await make()
    await eng.set_rate_limit("kind:quick", 2, burst=1)
    t0 = clock.now()
    ids = [(await eng.submit("quick")).id for _ in range(3)]
    await eng.wait(ids[0], timeout=10)
    await ticks()
    assert [state(eng, i) for i in ids[1:]] == [TaskState.PENDING, TaskState.PENDING]
    clock.advance(0.4)
    await ticks()
    assert state(eng, ids[1]) is TaskState.PENDING
    clock.advance(0.1)  # 0.5 s: the second token (the sampler is not due before 1 s)
    await eng.wait(ids[1], timeout=10)
    await ticks()
    assert state(eng, ids[2]) is TaskState.PENDING
    clock.advance(0.5)
    await eng.wait(ids[2], timeout=10)
    assert [started_at(eng, i) - t0 for i in ids] == [
        timedelta(0),
        timedelta(seconds=0.5),
        timedelta(seconds=1),
    ]


async def test_given_a_group_rate_limit_then_it_survives_reopening_the_database(
    make: Make, clock: FakeClock
) -> None:
    eng = await make()
    await eng.set_rate_limit("group:uploads", 2, burst=1)
    await eng.set_rate_limit("kind:hold", 5)
    await eng.set_rate_limit("kind:hold", None)  # removed: not stored either
    await eng.stop()

    eng = await make()
    assert eng.rate_limits() == {"group:uploads": (2.0, 1.0)}
    t0 = clock.now()
    a = await eng.submit("quick", group="uploads")
    b = await eng.submit("quick", group="uploads")
    other = await eng.submit("quick", group="other")
    await eng.wait(a.id, timeout=10)
    await eng.wait(other.id, timeout=10)
    await ticks()
    assert state(eng, b.id) is TaskState.PENDING
    clock.advance(0.5)
    await eng.wait(b.id, timeout=10)
    assert started_at(eng, b.id) - t0 == timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("scope", "per_second", "burst", "field"),
    [
        ("quick", 1, None, "scope"),
        ("kind:", 1, None, "scope"),
        ("group:", 1, None, "scope"),
        (5, 1, None, "scope"),
        ("kind:quick", 0, None, "per_second"),
        ("kind:quick", -2, None, "per_second"),
        ("kind:quick", math.nan, None, "per_second"),
        ("kind:quick", math.inf, None, "per_second"),
        ("kind:quick", True, None, "per_second"),
        ("kind:quick", "2", None, "per_second"),
        ("kind:quick", 1, 0, "burst"),
        ("kind:quick", 1, -1, "burst"),
        ("kind:quick", 1, math.nan, "burst"),
    ],
)
async def test_given_bad_rate_limit_arguments_then_invalid_argument_names_the_field(
    make: Make, scope: Any, per_second: Any, burst: Any, field: str
) -> None:
    eng = await make()
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        await eng.set_rate_limit(scope, per_second, burst)
    assert eng.rate_limits() == {}


# -- no head-of-line blocking -----------------------------------------------------------------


@pytest.mark.parametrize("gate", ["io", "rate", "group"])
async def test_given_the_head_of_the_queue_is_refused_by_a_gate_then_less_urgent_work_behind_it_starts(
    make: Make, clock: FakeClock, sampler: FakeSampler, hold: Hold, gate: str
) -> None:
    eng = await make(max_concurrency=4, io_capacity={"disk_write": 100 * MB})
    options: dict[str, Any] = {}
    if gate == "io":
        await sample(clock, sampler, disk_write=90 * MB)
        kind = "disk"
    elif gate == "rate":
        await eng.set_rate_limit("kind:hold", 0.1, burst=1)
        kind = "hold"
    else:
        await eng.set_group_limit("g", 1)
        kind, options = "hold", {"group": "g"}
    first = await eng.submit(kind, priority=Priority.NORMAL, **options)
    await until(lambda: hold.started == [first.id])
    head = await eng.submit(kind, priority=Priority.HIGH, **options)
    behind = await eng.submit("other", priority=Priority.IDLE, group="elsewhere")
    await until(lambda: hold.started == [first.id, behind.id])
    assert state(eng, head.id) is TaskState.PENDING
    assert [t.id for t in eng.tasks(states=["pending"])] == [head.id]


# -- why a ready task waits -------------------------------------------------------------------


def why(eng: Engine, task_id: int) -> tuple[str | None, str | None]:
    """The wait reason as get() and as snapshot() give it."""
    rec = eng.get(task_id)
    assert rec is not None
    return rec.wait_reason, eng.snapshot().waiting.get(task_id)


async def test_given_no_free_slot_then_the_task_is_waiting_for_a_slot(make: Make, hold: Hold) -> None:
    eng = await make(max_concurrency=1)
    first = await eng.submit("hold")
    await until(lambda: hold.started == [first.id])
    second = await eng.submit("hold")
    await ticks()
    assert why(eng, second.id) == ("waiting for a slot", "waiting for a slot")
    assert why(eng, first.id)[0] is None and first.id not in eng.snapshot().waiting


async def test_given_a_group_at_its_limit_then_the_task_says_so(make: Make, hold: Hold) -> None:
    eng = await make(max_concurrency=4)
    await eng.set_group_limit("s3://photos", 1)
    first = await eng.submit("hold", group="s3://photos")
    await until(lambda: hold.started == [first.id])
    second = await eng.submit("hold", group="s3://photos")
    await ticks()
    expected = "group s3://photos at its limit (1)"
    assert why(eng, second.id) == (expected, expected)


async def test_given_busy_io_then_the_task_says_which_resource_and_how_busy(
    make: Make, clock: FakeClock, sampler: FakeSampler, hold: Hold
) -> None:
    eng = await make()
    await eng.set_io_capacity("disk_write", 180 * MB)
    await sample(clock, sampler, disk_write=165.6 * MB)
    first = await eng.submit("disk")
    await until(lambda: hold.started == [first.id])
    second = await eng.submit("disk")
    await ticks()
    expected = "IO busy: disk write 92% of 180 MB/s"
    assert why(eng, second.id) == (expected, expected)


async def test_given_a_rate_limit_then_the_task_says_when_its_token_comes(
    make: Make, clock: FakeClock, hold: Hold
) -> None:
    eng = await make()
    await eng.set_rate_limit("kind:hold", 2, burst=1)
    first = await eng.submit("hold")
    await until(lambda: hold.started == [first.id])
    second = await eng.submit("hold")
    clock.advance(0.1)
    await ticks()
    expected = "rate limited: next in 0.4 s"
    assert why(eng, second.id) == (expected, expected)


async def test_given_pressure_then_the_task_names_the_source_and_level(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    eng = await make(pressure_sources=(Level("memory", 0.8),))
    await sample(clock, sampler)
    low = await eng.submit("quick", priority=Priority.LOW)
    await ticks()
    expected = "memory pressure 0.80"
    assert why(eng, low.id) == (expected, expected)


# -- IO that tasks are measured doing, and what kinds learn from history -------------------------


class Writer:
    """Records `mb` megabytes written per second of the fake clock until released."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.release = asyncio.Event()

    async def __call__(self, ctx: Any, payload: dict[str, Any]) -> None:
        while not self.release.is_set():
            ctx.record_io(written=int(payload["mb"] * MB))
            await self.clock.sleep_until(self.clock.now() + timedelta(seconds=1))


async def test_given_a_task_without_a_budget_when_it_is_measured_writing_then_its_rate_counts_as_usage(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    eng = await make()
    writer = Writer(clock)
    eng.register("writer", writer)
    await eng.set_io_capacity("disk_write", 100 * MB)
    await eng.submit("writer", {"mb": 90})
    await until(lambda: len(eng.snapshot().running) == 1)
    for _ in range(3):
        await sample(clock, sampler, disk_write=0.0)  # the system sampler sees nothing (a cache)
    assert eng.io_status()["disk_write"]["used"] == pytest.approx(90 * MB)
    # A task that declares disk writes now waits: 90 + 10 MB/s would pass 80% of 100 MB/s.
    waiting = await eng.submit("disk")
    await ticks()
    assert state(eng, waiting.id) is TaskState.PENDING
    assert eng.get(waiting.id).wait_reason == "IO busy: disk write 90% of 100 MB/s"  # type: ignore[union-attr]
    writer.release.set()
    await sample(clock, sampler)
    await until(lambda: state(eng, waiting.id) is TaskState.RUNNING)


async def test_given_a_kind_that_wrote_before_when_it_declares_no_budget_then_its_history_is_its_budget(
    make: Make, clock: FakeClock, sampler: FakeSampler, db_path: Path
) -> None:
    eng = await make()
    writer = Writer(clock)
    eng.register("writer", writer)
    first = await eng.submit("writer", {"mb": 40})
    await until(lambda: len(eng.snapshot().running) == 1)
    for _ in range(4):
        await sample(clock, sampler)
    writer.release.set()
    clock.advance(1)
    await eng.wait(first.id, timeout=10)
    assert eng.stats("writer").io_rates["written"] == pytest.approx(40 * MB, rel=0.3)
    await eng.stop()
    # Reopened, the engine knows what "writer" does from history: with the disk busy, a new
    # writer waits although it declares nothing, and a kind with no history does not.
    eng = await make()
    eng.register("writer", Writer(clock))
    await eng.set_io_capacity("disk_write", 100 * MB)
    blocker = await eng.submit("disk")  # holds 10 MB/s of budget: someone uses the disk
    await until(lambda: state(eng, blocker.id) is TaskState.RUNNING)
    await sample(clock, sampler, disk_write=50 * MB)
    second = await eng.submit("writer", {"mb": 1})
    fresh = await eng.submit("hold")
    await ticks()
    assert state(eng, second.id) is TaskState.PENDING
    assert (eng.get(second.id).wait_reason or "").startswith("IO busy: disk write")  # type: ignore[union-attr]
    await until(lambda: state(eng, fresh.id) is TaskState.RUNNING)


def test_the_system_pressure_sources_read_real_values_between_0_and_1() -> None:
    from core.resources import SYSTEM_PRESSURE

    for source in SYSTEM_PRESSURE:
        value = source()
        assert 0.0 <= value <= 1.0, (source.name, value)
    assert [s.name for s in SYSTEM_PRESSURE] == ["memory", "CPU", "battery"]


async def test_given_many_lanes_refused_for_io_when_the_disk_frees_up_then_each_runs_in_turn(
    make: Make, clock: FakeClock, sampler: FakeSampler, hold: Hold
) -> None:
    """Tasks with budgets of their own each make a lane; refused lanes are parked, and
    must all come back when the headroom they need returns."""
    eng = await make(max_concurrency=2)
    await eng.set_io_capacity("disk_write", 100 * MB)
    big = await eng.submit("disk", io=IoBudget(disk_write=70 * MB))  # the first always runs
    await until(lambda: hold.started == [big.id])
    ids = [(await eng.submit("quick", io=IoBudget(disk_write=(20 + i % 7) * MB))).id for i in range(60)]
    await ticks()
    assert all(state(eng, i) is TaskState.PENDING for i in ids)
    assert why(eng, ids[0])[0] == "IO busy: disk write 70% of 100 MB/s"
    hold.released.add(big.id)  # the disk frees up: every parked lane fits again
    for i in ids:
        assert (await eng.wait(i, timeout=10)).state is TaskState.COMPLETED


async def test_given_a_lane_waiting_for_pressure_when_a_more_urgent_task_joins_it_then_that_one_starts(
    make: Make, clock: FakeClock, sampler: FakeSampler
) -> None:
    eng = await make(pressure_sources=(Level("memory", 0.6),))
    await sample(clock, sampler)
    low = await eng.submit("quick", priority=Priority.LOW)  # waits at pressure 0.6
    await ticks()
    assert state(eng, low.id) is TaskState.PENDING
    normal = await eng.submit("quick", priority=Priority.NORMAL)  # same lane, passes at 0.6
    assert (await eng.wait(normal.id, timeout=10)).state is TaskState.COMPLETED
    assert state(eng, low.id) is TaskState.PENDING


def test_given_loopback_traffic_then_the_psutil_sampler_does_not_count_it_as_network() -> None:
    """Megabytes through 127.0.0.1 (a local server) must not look like a busy network."""
    import socket
    import threading

    pytest.importorskip("psutil")
    server = socket.create_server(("127.0.0.1", 0))
    sent = 32 << 20

    def drain() -> None:
        conn, _ = server.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    reader = threading.Thread(target=drain)
    reader.start()
    sampler = PsutilSampler()
    assert sampler() == {}
    with socket.create_connection(server.getsockname()) as client:
        client.sendall(b"x" * sent)
    reader.join(timeout=30)
    server.close()
    before = sampler._last
    assert before is not None
    counters = sampler._counters()
    moved = counters["net_tx"] - before["net_tx"] + counters["net_rx"] - before["net_rx"]
    assert moved < sent // 2, f"{moved} bytes counted for {sent} sent over loopback"
