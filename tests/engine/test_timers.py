"""Everything timed runs on the injected clock: run_at, backoff, timeouts, TTL, grace."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from core import Engine, EngineConfig, RetryPolicy, TaskState
from core.testing import FakeClock
from tests.conftest import until


async def test_given_a_delayed_task_then_it_starts_only_when_the_clock_reaches_run_at(
    engine: Engine, clock: FakeClock
) -> None:
    res = await engine.submit("noop", delay=30)
    await asyncio.sleep(0.05)
    rec = engine.get(res.id)
    assert rec is not None and rec.state is TaskState.PENDING
    assert rec.wait_reason == "scheduled in 30 s"
    clock.advance(29)
    await asyncio.sleep(0.05)
    assert engine.get(res.id).state is TaskState.PENDING  # type: ignore[union-attr]
    clock.advance(1)
    assert (await engine.wait(res.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_run_at_in_the_past_then_the_task_runs_at_once(engine: Engine, clock: FakeClock) -> None:
    res = await engine.submit("noop", run_at=clock.now() - timedelta(hours=1))
    assert (await engine.wait(res.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_a_failing_task_then_retries_wait_out_their_backoff_on_the_clock(
    db_path: Path, clock: FakeClock
) -> None:
    attempts: list[int] = []

    async def flaky(ctx: Any, payload: Any) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("server went away")
        return "ok"

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("flaky", flaky, retry=RetryPolicy.exponential(max_retries=3, base=10, jitter=0))
    await eng.start()
    res = await eng.submit("flaky")
    await until(lambda: attempts == [1])
    await until(lambda: eng.get(res.id).attempt == 2)  # type: ignore[union-attr]
    rec = eng.get(res.id)
    assert rec is not None and rec.state is TaskState.PENDING
    assert rec.error == "ConnectionError: server went away"
    assert rec.wait_reason == "retrying in 10 s (attempt 2)"
    clock.advance(9.5)
    await asyncio.sleep(0.05)
    assert attempts == [1]
    clock.advance(0.5)
    await until(lambda: len(attempts) == 2)
    clock.advance(19.9)  # second backoff: 20 s
    await asyncio.sleep(0.05)
    assert len(attempts) == 2
    clock.advance(0.1)
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.COMPLETED and rec.attempt == 3 and rec.result == "ok"
    kinds = [e.kind for e in eng.events_of(res.id)]
    assert kinds == ["submitted", "started", "retrying", "started", "retrying", "started", "completed"]
    retrying = [e for e in eng.events_of(res.id) if e.kind == "retrying"]
    assert retrying[0].data["attempt"] == 2 and retrying[0].data["of"] == 4
    await eng.stop()


async def test_given_retries_run_out_then_the_task_fails_with_the_last_error_and_traceback(
    db_path: Path, clock: FakeClock
) -> None:
    async def broken(ctx: Any, payload: Any) -> None:
        raise ValueError(f"bad input on attempt {ctx.attempt}")

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("broken", broken, retry=RetryPolicy.fixed(max_retries=1, delay=5))
    await eng.start()
    res = await eng.submit("broken")
    await until(lambda: eng.get(res.id).attempt == 2)  # type: ignore[union-attr]
    clock.advance(5)
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.FAILED
    assert rec.error == "ValueError: bad input on attempt 2"
    assert rec.traceback is not None and "broken" in rec.traceback
    assert rec.attempt == 2 and rec.max_retries == 1
    await eng.stop()


async def test_given_permanent_failure_then_no_retry(db_path: Path, clock: FakeClock) -> None:
    from core import Permanent

    async def denied(ctx: Any, payload: Any) -> None:
        raise Permanent("403 Forbidden")

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("denied", denied)
    await eng.start()
    rec = await eng.wait((await eng.submit("denied")).id, timeout=10)
    assert rec.state is TaskState.FAILED and rec.attempt == 1 and rec.error == "403 Forbidden"
    await eng.stop()


async def test_given_a_timeout_when_the_clock_passes_it_then_the_attempt_fails_as_timed_out(
    db_path: Path, clock: FakeClock
) -> None:
    started = asyncio.Event()

    async def hang(ctx: Any, payload: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("hang", hang, timeout=60, retry=RetryPolicy.none())
    await eng.start()
    res = await eng.submit("hang")
    await asyncio.wait_for(started.wait(), 10)
    clock.advance(59)
    await asyncio.sleep(0.05)
    assert eng.get(res.id).state is TaskState.RUNNING  # type: ignore[union-attr]
    clock.advance(1)
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.FAILED and rec.error == "TimeoutError: timed out after 60 s"
    await eng.stop()


async def test_given_a_ttl_when_the_task_is_not_started_in_time_then_it_expires(
    engine: Engine, clock: FakeClock
) -> None:
    await engine.hold()
    res = await engine.submit("noop", ttl=300)
    clock.advance(299)
    await asyncio.sleep(0.05)
    assert engine.get(res.id).state is TaskState.PENDING  # type: ignore[union-attr]
    clock.advance(1)
    rec = await engine.wait(res.id, timeout=10)
    assert rec.state is TaskState.EXPIRED
    assert "ttl" in (rec.error or "")


async def test_given_a_ttl_when_the_task_started_in_time_then_it_never_expires(
    db_path: Path, clock: FakeClock
) -> None:
    gate = asyncio.Event()

    async def slow(ctx: Any, payload: Any) -> str:
        await gate.wait()
        return "done"

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("slow", slow)
    await eng.start()
    res = await eng.submit("slow", ttl=10)
    await until(lambda: eng.get(res.id).state is TaskState.RUNNING)  # type: ignore[union-attr]
    clock.advance(3600)
    await asyncio.sleep(0.05)
    gate.set()
    assert (await eng.wait(res.id, timeout=10)).state is TaskState.COMPLETED
    await eng.stop()


async def test_given_cancel_of_a_task_that_ignores_interruption_then_it_is_cancelled_after_the_grace(
    db_path: Path, clock: FakeClock
) -> None:
    started = asyncio.Event()

    async def stubborn(ctx: Any, payload: Any) -> None:
        started.set()
        await asyncio.Event().wait()  # never reaches a yield point

    eng = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=5))
    eng.register("stubborn", stubborn)
    await eng.start()
    res = await eng.submit("stubborn")
    await asyncio.wait_for(started.wait(), 10)
    await eng.cancel(res.id)
    await asyncio.sleep(0.05)
    rec = eng.get(res.id)
    assert rec is not None and rec.state is TaskState.RUNNING and rec.wait_reason == "stopping"
    clock.advance(5)
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.CANCELLED
    await eng.stop()


async def test_given_a_group_paused_until_a_time_then_it_resumes_by_itself(
    engine: Engine, clock: FakeClock
) -> None:
    await engine.pause_group("uploads", until=600)
    res = await engine.submit("noop", group="uploads")
    rec = engine.get(res.id)
    assert rec is not None and rec.state is TaskState.PAUSED and rec.pause_reasons == ("group",)
    clock.advance(600)
    assert (await engine.wait(res.id, timeout=10)).state is TaskState.COMPLETED
    assert not [g for g in engine.groups() if g.paused]


async def test_given_the_real_clock_then_timers_fire_in_order_never_before_their_instant() -> None:
    import time

    from core.clock import SystemClock
    from core.timers import Timers

    timers = Timers(SystemClock())
    fired: list[tuple[float, float]] = []
    service = asyncio.create_task(timers.run())
    base = time.time()
    for i, offset in enumerate((0.05, 0.01, 0.03, 0.0305, 0.2)):
        when = base + offset
        handle = timers.call_at(when, lambda when=when: fired.append((when, time.time())))
        if i == 4:
            handle.cancel()
    await until(lambda: len(fired) == 4)
    await asyncio.sleep(0.25)
    service.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await service
    assert [w for w, _ in fired] == sorted(w for w, _ in fired) and len(fired) == 4
    assert all(at >= when for when, at in fired)
