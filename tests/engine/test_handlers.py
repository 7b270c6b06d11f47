"""Handlers off the loop: threads and worker processes, with the same ctx surface."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig, InvalidArgument, Permanent, RetryPolicy, TaskState
from core.testing import FakeClock
from tests.conftest import until
from tests.engine import handlers


async def test_given_a_thread_handler_then_it_runs_off_the_loop_with_progress_and_checkpoints(
    db_path: Path,
) -> None:
    loop_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    def work(ctx: Any, payload: Any) -> str:
        seen["thread"] = threading.get_ident()
        for i in range(5):
            ctx.progress(done=i + 1, total=5)
            ctx.checkpoint({"i": i + 1})
            ctx.log(f"step {i + 1}")
            time.sleep(0.002)
        return "done"

    eng = await Engine.open(db_path)
    eng.register("work", work, run_in="thread")
    await eng.start()
    res = await eng.submit("work")
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.COMPLETED and rec.result == "done"
    assert seen["thread"] != loop_thread
    assert [ln.message for ln in eng.logs(res.id)] == [f"step {i}" for i in range(1, 6)]
    await eng.stop()


async def test_given_a_thread_handler_when_cancelled_then_it_stops_cooperatively(db_path: Path) -> None:
    started = threading.Event()

    def spin(ctx: Any, payload: Any) -> None:
        started.set()
        while True:
            ctx.yield_point()
            time.sleep(0.005)

    eng = await Engine.open(db_path, EngineConfig(preempt_grace=30))
    eng.register("spin", spin, run_in="thread")
    await eng.start()
    res = await eng.submit("spin")
    await asyncio.to_thread(started.wait, 10)
    await eng.cancel(res.id)
    assert (await eng.wait(res.id, timeout=10)).state is TaskState.CANCELLED
    await eng.stop()


async def test_given_a_process_handler_then_progress_io_logs_and_checkpoints_cross_the_process(
    db_path: Path,
) -> None:
    import os

    eng = await Engine.open(db_path, EngineConfig(process_workers=1))
    eng.register("count", handlers.count, run_in="process")
    await eng.start()
    res = await eng.submit("count", {"n": 12})
    rec = await eng.wait(res.id, timeout=60)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert rec.result["pid"] != os.getpid()
    assert rec.io.read == 1200 and rec.io.written == 120
    assert rec.progress == 1.0
    assert eng.logs(res.id)[0].message.startswith("counted in pid ")
    await eng.stop()


async def test_given_a_process_handler_that_fails_then_the_message_and_remote_traceback_are_kept(
    db_path: Path,
) -> None:
    eng = await Engine.open(db_path, EngineConfig(process_workers=1))
    eng.register("fail", handlers.fail, run_in="process", retry=RetryPolicy.none())
    await eng.start()
    rec = await eng.wait((await eng.submit("fail", 7)).id, timeout=60)
    assert rec.state is TaskState.FAILED and rec.error == "ValueError: bad value 7"
    assert rec.traceback is not None and "def fail" not in rec.traceback and "handlers.py" in rec.traceback
    await eng.stop()


async def test_given_a_worker_process_dies_then_only_its_task_fails_and_the_pool_recovers(
    db_path: Path,
) -> None:
    eng = await Engine.open(db_path, EngineConfig(process_workers=1))
    eng.register("die", handlers.die, run_in="process", retry=RetryPolicy.none())
    eng.register("count", handlers.count, run_in="process")
    await eng.start()
    died = await eng.wait((await eng.submit("die")).id, timeout=60)
    assert died.state is TaskState.FAILED and "worker process died" in (died.error or "")
    ok = await eng.wait((await eng.submit("count", {"n": 3})).id, timeout=60)
    assert ok.state is TaskState.COMPLETED
    await eng.stop()


async def test_given_a_process_task_paused_then_it_resumes_from_its_checkpoint(db_path: Path) -> None:
    eng = await Engine.open(db_path, EngineConfig(process_workers=1, preempt_grace=10))
    eng.register("count", handlers.count, run_in="process")
    await eng.start()
    res = await eng.submit("count", {"n": 400, "sleep": 0.01})
    await until(lambda: (eng.get(res.id).resume_data or {}).get("i", 0) >= 10, timeout=60)  # type: ignore[union-attr]
    await eng.pause(res.id)
    await until(lambda: eng.get(res.id).state is TaskState.PAUSED, timeout=30)  # type: ignore[union-attr]
    saved = eng.get(res.id).resume_data["i"]  # type: ignore[union-attr]
    await eng.resume(res.id)
    rec = await eng.wait(res.id, timeout=60)
    assert rec.state is TaskState.COMPLETED and rec.result["from"] == saved and rec.result["attempt"] == 1
    await eng.stop()


async def test_given_a_process_task_that_ignores_cancel_then_the_worker_is_killed_after_the_grace(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(process_workers=1, preempt_grace=5, clock=clock))
    eng.register("stuck", handlers.ignore_interrupts, run_in="process")
    eng.register("count", handlers.count, run_in="process")
    await eng.start()
    res = await eng.submit("stuck")
    await until(
        lambda: eng.get(res.id).state is TaskState.RUNNING and eng._running[res.id].worker is not None,
        timeout=60,
    )  # type: ignore[union-attr]
    await eng.cancel(res.id)
    clock.advance(5)
    assert (await eng.wait(res.id, timeout=30)).state is TaskState.CANCELLED
    assert (await eng.wait((await eng.submit("count", {"n": 2})).id, timeout=60)).state is TaskState.COMPLETED
    await eng.stop()


async def test_given_a_cleanup_hook_then_it_runs_once_when_a_task_fails_for_good_or_is_cancelled(
    db_path: Path, clock: FakeClock
) -> None:
    cleaned: list[tuple[int, str, Any]] = []
    go = asyncio.Event()

    async def upload(ctx: Any, payload: Any) -> None:
        await ctx.checkpoint({"upload_id": f"u{ctx.id}"})
        if payload == "fail":
            raise Permanent("bucket does not exist")
        await go.wait()

    async def abort(ctx: Any, payload: Any, reason: str) -> None:
        cleaned.append((ctx.id, reason, ctx.resume_data))

    eng = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=1))
    eng.register("upload", upload, cleanup=abort)
    await eng.start()
    failed = await eng.wait((await eng.submit("upload", "fail")).id, timeout=10)
    assert cleaned == [(failed.id, "failed", {"upload_id": f"u{failed.id}"})]
    res = await eng.submit("upload", "ok")
    await until(lambda: eng.get(res.id).resume_data is not None)  # type: ignore[union-attr]
    await eng.cancel(res.id)
    clock.advance(1)  # the grace: it never reaches a yield point
    await eng.wait(res.id, timeout=10)
    assert cleaned[1] == (res.id, "cancelled", {"upload_id": f"u{res.id}"})
    await eng.stop()


async def test_given_a_started_task_cancelled_before_the_next_engine_starts_then_its_cleanup_runs_at_start(
    db_path: Path, clock: FakeClock
) -> None:
    """An upload interrupted by a stop, cancelled by a new engine before start(): the hook
    that aborts it on the server still runs (once the engine runs), with the checkpoint."""
    cleaned: list[tuple[int, str, Any]] = []
    go = asyncio.Event()

    async def upload(ctx: Any, payload: Any) -> None:
        await ctx.checkpoint({"upload_id": f"u{ctx.id}"})
        await go.wait()

    async def abort(ctx: Any, payload: Any, reason: str) -> None:
        cleaned.append((ctx.id, reason, ctx.resume_data))

    first = await Engine.open(db_path, EngineConfig(clock=clock))
    first.register("upload", upload, cleanup=abort)
    await first.start()
    res = await first.submit("upload", "big.iso")
    await until(lambda: first.get(res.id).resume_data is not None)  # type: ignore[union-attr]
    await first.stop(grace=0)  # interrupted: it stays active, with its checkpoint
    second = await Engine.open(db_path, EngineConfig(clock=clock))
    second.register("upload", upload, cleanup=abort)
    await second.cancel(res.id)
    assert second.get(res.id).state is TaskState.CANCELLED  # type: ignore[union-attr]
    assert cleaned == []  # nothing runs before start()
    await second.start()
    await until(lambda: len(cleaned) == 1)
    assert cleaned == [(res.id, "cancelled", {"upload_id": f"u{res.id}"})]
    await second.stop()


async def test_given_a_cleanup_that_hangs_then_it_is_bounded_by_its_timeout(
    db_path: Path, clock: FakeClock
) -> None:
    async def boom(ctx: Any, payload: Any) -> None:
        raise Permanent("no")

    async def hang(ctx: Any, payload: Any, reason: str) -> None:
        await asyncio.Event().wait()

    eng = await Engine.open(db_path, EngineConfig(clock=clock, cleanup_timeout=30))
    eng.register("boom", boom, cleanup=hang)
    await eng.start()
    res = await eng.submit("boom")
    await until(lambda: clock.sleepers > 0)
    clock.advance(30)
    assert (await eng.wait(res.id, timeout=10)).state is TaskState.FAILED
    await eng.stop()


def test_given_bad_registrations_then_invalid_argument_says_what_to_use() -> None:
    async def main() -> None:
        eng = await Engine.open(":memory:")
        with pytest.raises(InvalidArgument, match="run_in='loop' needs an async function"):
            eng.register("x", handlers.fail)
        with pytest.raises(InvalidArgument, match="needs a plain function"):
            eng.register("x", _async_noop, run_in="process")
        with pytest.raises(InvalidArgument, match="run_in"):
            eng.register("x", handlers.fail, run_in="fork")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="schema"):
            eng.register("x", _async_noop, schema={"type": "no-such-type"})
        await eng.stop()

    asyncio.run(main())


async def _async_noop(ctx: Any, payload: Any) -> None:
    return None


async def test_given_a_process_handler_then_it_can_spawn_children_across_the_process(db_path: Path) -> None:
    async def part(ctx: Any, payload: Any) -> Any:
        return payload

    eng = await Engine.open(db_path, EngineConfig(process_workers=1))
    eng.register("part", part)
    eng.register("spawner", handlers.spawn_parts, run_in="process")
    await eng.start()
    res = await eng.submit("spawner", {"n": 3})
    rec = await eng.wait(res.id, timeout=60)
    assert rec.state is TaskState.COMPLETED and rec.result == "spawned 3"
    assert sorted(k.payload for k in eng.children(res.id)) == [0, 1, 2]
    await eng.stop()
