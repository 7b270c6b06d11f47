"""Crash recovery with real SIGKILLs (SPEC §3.1, §3.7, §4.4, §4.9).

Each test starts `python -m tests.crash.worker`, reads its marker lines up to the instant
it wants (never sleeping and hoping), kills it with SIGKILL, reopens the database with
`Engine.open` here, and checks what recovery made of it (see harness.reopen_and_check).
Random choices (how many markers to wait for, extra delays before the kill) come from
one seed per test, printed so a failure can be replayed with CRASH_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core import Engine, Recovery, TaskState
from tests.crash.conftest import Spawn
from tests.crash.harness import (
    ReopenReport,
    batch_counts,
    drained,
    guard_candidates,
    integrity_check,
    reopen_and_check,
)
from tests.crash.worker import HANG_SECONDS, engine_config, register_kinds


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(2**32))
    print(f"CRASH_SEED={seed}")
    return random.Random(seed)


def side_steps(side: Path) -> tuple[Counter[tuple[int, int]], dict[int, list[tuple[int, int]]]]:
    """From a side file: how many times each (task, step) was done, and each task's
    handler starts as (attempt, first step)."""
    steps: Counter[tuple[int, int]] = Counter()
    starts: dict[int, list[tuple[int, int]]] = {}
    for line in side.read_text().splitlines():
        word, *rest = line.split()
        nums = [int(x) for x in rest]
        if word == "STEP":
            steps[(nums[0], nums[1])] += 1
        elif word == "START":
            starts.setdefault(nums[0], []).append((nums[1], nums[2]))
    return steps, starts


def check_all_ended(engine: Engine, ids: set[int], reports: list[ReopenReport]) -> None:
    """Every task completed, except those running at 3 kills in a row, which the crash
    guard may have failed (a claimed noop counts as interrupted even if its handler had
    not begun; tests/crash/worker.py submit_many loops can starve it that long)."""
    may_fail = guard_candidates(reports)
    bad: list[tuple[Any, ...]] = []
    for i in sorted(ids):
        rec = engine.get(i)
        if rec is None:
            bad.append((i, "missing"))
        elif rec.state is TaskState.FAILED and "interrupted 3 times" in (rec.error or "") and i in may_fail:
            continue
        elif rec.state is not TaskState.COMPLETED or rec.attempt != 1:
            bad.append((i, rec.state.value, rec.attempt, rec.error))
    assert bad == []
    active = {k: v for k, v in engine.counts().items() if v and TaskState(k).is_active}
    assert active == {}


@pytest.mark.crash
async def test_given_single_submits_when_killed_then_every_acknowledged_task_is_there(
    tmp_path: Path, spawn: Spawn, rng: random.Random
) -> None:
    db = tmp_path / "tasks.db"
    acked: set[int] = set()
    reports = []
    for r in range(3):
        w = spawn(db, "submits", "--tag", f"r{r}")
        w.expect_word("READY")
        w.expect_count("ACK", rng.randint(30, 400))
        w.kill(delay=rng.uniform(0, 0.02))
        assert w.markers.acked, w.describe()
        acked |= w.markers.acked
        reports.append(report := await reopen_and_check(db, acked))
        assert report.problems == [], w.describe()

    async with drained(db) as engine:
        check_all_ended(engine, acked, reports)
    assert integrity_check(db) == "ok"


@pytest.mark.crash
async def test_given_submit_many_bursts_when_killed_then_each_batch_is_whole_or_absent(
    tmp_path: Path, spawn: Spawn, rng: random.Random
) -> None:
    db = tmp_path / "tasks.db"
    announced: dict[str, int] = {}
    acked_batches: dict[str, tuple[int, int] | None] = {}
    acked: set[int] = set()
    reports = []
    for r in range(3):
        w = spawn(db, "burst", "--tag", f"r{r}", "--batch", 500)
        w.expect_word("READY")
        w.expect_count("ACKMANY", rng.randint(1, 4))
        w.expect_word("BATCH")  # the next batch is being written: kill inside its commit
        w.kill(delay=rng.uniform(0, 0.03))
        m = w.markers
        announced.update(m.batches)
        acked_batches.update(m.acked_batches)
        acked |= m.acked
        reports.append(report := await reopen_and_check(db, acked))
        assert report.problems == [], w.describe()

        found = batch_counts(db)
        for tag, size in announced.items():
            count, lo, hi = found.get(tag, (0, None, None))
            if tag in acked_batches:
                assert count == size, f"acknowledged batch {tag} has {count} of {size} tasks"
                ids = acked_batches[tag]
                assert ids is None or (lo, hi) == ids, f"batch {tag}: ids {lo}..{hi}, acknowledged {ids}"
            else:
                assert count in (0, size), f"unacknowledged batch {tag} is partial: {count} of {size}"
        assert set(found) <= set(announced), f"batches nobody announced: {set(found) - set(announced)}"
        assert len(set(announced) - set(acked_batches)) <= r + 1  # at most one in flight per kill

    async with drained(db, timeout=90) as engine:
        every = {i for _, lo, hi in batch_counts(db).values() for i in range(lo, hi + 1)}
        assert acked <= every
        check_all_ended(engine, every, reports)


@pytest.mark.crash
async def test_given_running_tasks_when_killed_then_they_resume_from_their_checkpoints(
    tmp_path: Path, spawn: Spawn, rng: random.Random
) -> None:
    db, side = tmp_path / "tasks.db", tmp_path / "steps.log"
    steps = 300
    w = spawn(db, "running", "--count", 2, "--hang", 1, "--steps", steps, "--delay", 0.01,
              "--side", side, "--concurrency", 4)  # fmt: skip
    w.expect_word("READY")
    w.expect_count("ACK", 3)
    step_a, step_b, hang = sorted(w.markers.acked)
    m = w.markers
    w.expect(lambda _: set(m.starts) >= {step_a, step_b, hang}, "RUNNING for the three tasks")
    at_least = rng.randint(2, 25)
    w.expect(lambda _: min(m.checkpoints.get(step_a, -1), m.checkpoints.get(step_b, -1)) >= at_least,
             f"both step tasks past step {at_least}")  # fmt: skip
    w.kill(delay=rng.uniform(0, 0.015))
    assert hang not in m.checkpoints

    report = await reopen_and_check(db, m.acked, checkpoints=m.checkpoints)
    assert report.problems == [], w.describe()
    assert report.recovery == Recovery(resumed=2, restarted=1, failed=0, finalized=0)
    assert set(report.before) == {step_a, step_b, hang}
    kept = {i: report.before[i].checkpoint["step"] for i in (step_a, step_b)}
    for i in (step_a, step_b):
        assert kept[i] in (m.checkpoints[i], m.checkpoints[i] + 1)  # acknowledged, or one more
    assert report.before[hang].checkpoint is None
    assert all(row.attempt == 1 for row in report.before.values())

    async with drained(db) as engine:
        for i in (step_a, step_b, hang):
            rec = engine.get(i)
            assert rec is not None
            assert rec.state is TaskState.COMPLETED, (i, rec.state, rec.error)
            assert rec.attempt == 1
        assert engine.get(step_a).result == {"steps": steps, "first": kept[step_a] + 1}  # type: ignore[union-attr]
        assert engine.get(step_b).result == {"steps": steps, "first": kept[step_b] + 1}  # type: ignore[union-attr]
        assert engine.get(hang).result == {"steps": steps, "first": 0}  # type: ignore[union-attr]

    done, starts = side_steps(side)
    for i in (step_a, step_b):
        redone = [s for s in range(kept[i] + 1) if done[(i, s)] != 1]
        assert redone == [], f"task {i}: steps up to checkpoint {kept[i]} done more than once: {redone}"
        assert all(done[(i, s)] >= 1 for s in range(steps)), f"task {i} skipped steps"
        # a step after the checkpoint may have been done before the kill and again after
        assert all(done[(i, s)] <= 2 for s in range(steps))
        assert starts[i] == [(1, 0), (1, kept[i] + 1)]  # same attempt, from the checkpoint
    assert starts[hang] == [(1, 0), (1, 0)]  # restarted: no checkpoint, same attempt


@pytest.mark.crash
async def test_given_a_tight_checkpoint_loop_when_killed_then_the_last_acknowledged_checkpoint_or_the_next_is_kept(
    tmp_path: Path, spawn: Spawn, rng: random.Random
) -> None:
    for r in range(3):
        db = tmp_path / f"r{r}.db"
        w = spawn(db, "checkpoint")
        w.expect_word("READY")
        w.expect_count("CHECKPOINT", rng.randint(20, 1500))
        w.kill(delay=rng.uniform(0, 0.005))
        (task_id,) = w.markers.acked
        last = w.markers.checkpoints[task_id]
        report = await reopen_and_check(db, w.markers.acked, checkpoints=w.markers.checkpoints)
        assert report.problems == [], w.describe()
        assert report.recovery == Recovery(resumed=1)
        kept = report.before[task_id].checkpoint
        # checkpoint(i) commits, then CHECKPOINT i is printed, then checkpoint(i+1) starts
        assert kept in ({"step": last}, {"step": last + 1}), (last, kept)


@pytest.mark.crash
async def test_given_a_task_running_at_three_crashes_in_a_row_then_it_fails_and_the_others_are_unaffected(
    tmp_path: Path, spawn: Spawn
) -> None:
    db, side = tmp_path / "tasks.db", tmp_path / "steps.log"
    # 1st crash: the poison task P hangs in its handler; a step task S and 20 noops finish.
    w = spawn(db, "running", "--count", 1, "--steps", 5, "--delay", 0.005, "--hang", 1,
              "--noops", 20, "--side", side, "--events")  # fmt: skip
    w.expect_word("READY")
    w.expect_count("ACK", 22)
    ids = sorted(w.markers.acked)
    s_task, poison, noops = ids[0], ids[1], ids[2:]
    m = w.markers
    w.expect(lambda _: poison in m.starts and all(m.done.get(i) == "completed" for i in [s_task, *noops]),
             "P running, S and the noops completed")  # fmt: skip
    w.kill()
    report = await reopen_and_check(db, m.acked)
    assert report.problems == [], w.describe()
    assert report.recovery == Recovery(restarted=1)

    # 2nd crash.
    w = spawn(db, "serve", "--events")
    w.expect(lambda line: line.startswith(f"RUNNING {poison} "), "P running again")
    w.kill()
    report = await reopen_and_check(db)
    assert report.problems == [], w.describe()
    assert report.recovery == Recovery(restarted=1)

    # 3rd crash: P fails; R, running for the first time at that crash, is only restarted.
    w = spawn(db, "serve", "--hang", 1, "--events")
    w.expect_word("ACK")
    (r_task,) = w.markers.acked
    w.expect(lambda _: {poison, r_task} <= set(w.markers.starts), "P and R running")
    w.kill()
    report = await reopen_and_check(db, {r_task})
    assert report.problems == [], w.describe()
    assert report.recovery == Recovery(restarted=1, failed=1)

    async with drained(db) as engine:
        p = engine.get(poison)
        assert p is not None and p.state is TaskState.FAILED
        assert "interrupted 3 times" in (p.error or "")
        assert p.attempt == 1
        for i in [s_task, r_task, *noops]:
            rec = engine.get(i)
            assert rec is not None and rec.state is TaskState.COMPLETED, (i, rec)
            assert rec.attempt == 1
        assert engine.counts()["failed"] == 1
    _, starts = side_steps(side)
    assert starts[poison] == [(1, 0)] * 3  # it never ran again after the guard failed it


@pytest.mark.crash
async def test_given_crashes_with_a_clean_stop_between_then_the_guard_counts_only_consecutive_crashes(
    tmp_path: Path, spawn: Spawn
) -> None:
    db = tmp_path / "tasks.db"
    w = spawn(db, "running", "--hang", 1)
    w.expect_word("ACK")
    (poison,) = w.markers.acked
    for crash in (1, 2):
        if crash > 1:
            w = spawn(db, "serve")
        w.expect(lambda line: line.startswith(f"RUNNING {poison} "), "P running")
        w.kill()
        report = await reopen_and_check(db)
        assert report.problems == [], w.describe()
        assert report.recovery == Recovery(restarted=1)

    await _run_until_running_then_stop(db, poison)  # a clean stop while P runs
    engine = await Engine.open(db, engine_config())
    try:
        assert engine.last_recovery == Recovery()
        assert engine.get(poison).state is TaskState.PENDING  # type: ignore[union-attr]
    finally:
        await engine.stop(grace=0)

    w = spawn(db, "serve")
    w.expect(lambda line: line.startswith(f"RUNNING {poison} "), "P running")
    w.kill()
    report = await reopen_and_check(db)
    assert report.problems == [], w.describe()
    assert report.recovery == Recovery(restarted=1), "a stop between crashes must reset the count"
    async with drained(db) as engine:
        assert engine.get(poison).state is TaskState.COMPLETED  # type: ignore[union-attr]


async def _run_until_running_then_stop(db: Path, task_id: int) -> None:
    """In-process: start the engine, wait for the task's handler to run, stop(grace=0)."""
    started = asyncio.Event()

    def emit(line: str) -> None:
        if line.startswith(f"RUNNING {task_id} "):
            started.set()

    engine = await Engine.open(db, engine_config())
    try:
        register_kinds(engine, emit)
        await engine.start()
        await asyncio.wait_for(started.wait(), 10)
    finally:
        await engine.stop(grace=0)


async def test_given_stop_grace_0_while_a_task_runs_then_reopening_never_counts_it_as_a_crash(
    tmp_path: Path,
) -> None:
    db = tmp_path / "tasks.db"
    engine = await Engine.open(db, engine_config())
    try:
        register_kinds(engine)
        task_id = (await engine.submit("step", {"steps": 3, "delay": 0.0, "first_delay": HANG_SECONDS})).id
        await engine.submit("step", {"steps": 3, "delay": 0.0})
    finally:
        await engine.stop(grace=0)

    for _ in range(2 * 3):  # twice the crash limit
        await _run_until_running_then_stop(db, task_id)
        engine = await Engine.open(db, engine_config())
        try:
            assert engine.last_recovery == Recovery()
            rec = engine.get(task_id)
            assert rec is not None and rec.state is TaskState.PENDING and rec.attempt == 1
            assert [e.kind for e in engine.events_of(task_id)][-1] == "interrupted"
        finally:
            await engine.stop(grace=0)
        assert integrity_check(db) == "ok"

    async with drained(db) as engine:
        rec = engine.get(task_id)
        assert rec is not None and rec.state is TaskState.COMPLETED and rec.attempt == 1
        assert engine.counts()["completed"] == 2


@pytest.mark.crash
async def test_given_an_acknowledged_pause_of_a_running_task_when_killed_then_it_comes_back_paused(
    tmp_path: Path, spawn: Spawn
) -> None:
    """§3.4: control calls take effect at once and persist (pauses survive a restart)."""
    db = tmp_path / "tasks.db"
    w = spawn(db, "pause")
    w.expect_word("PAUSE")
    w.kill()
    (task_id,) = w.markers.paused
    report = await reopen_and_check(db, w.markers.acked)
    assert report.problems == [], w.describe()
    engine = await Engine.open(db, engine_config())
    try:
        rec = engine.get(task_id)
        assert rec is not None
        assert (rec.state, rec.pause_reasons) == (TaskState.PAUSED, ("user",))
    finally:
        await engine.stop(grace=0)


@pytest.mark.crash
async def test_given_an_acknowledged_resume_of_a_running_task_when_killed_then_it_comes_back_pending(
    tmp_path: Path, spawn: Spawn
) -> None:
    db = tmp_path / "tasks.db"
    w = spawn(db, "pause", "--then-resume")
    w.expect_word("RESUME")
    w.kill()
    (task_id,) = w.markers.resumed
    report = await reopen_and_check(db, w.markers.acked)
    assert report.problems == [], w.describe()
    engine = await Engine.open(db, engine_config())
    try:
        rec = engine.get(task_id)
        assert rec is not None
        assert (rec.state, rec.pause_reasons) == (TaskState.PENDING, ())
    finally:
        await engine.stop(grace=0)


@pytest.mark.crash
async def test_given_pause_all_with_a_task_running_when_killed_then_the_task_comes_back_paused(
    tmp_path: Path, spawn: Spawn
) -> None:
    """§4.9: pauses come back as they were."""
    db = tmp_path / "tasks.db"
    w = spawn(db, "pause", "--all")
    w.expect_word("PAUSEALL")
    w.kill()
    (task_id,) = w.markers.acked
    report = await reopen_and_check(db, w.markers.acked)
    assert report.problems == [], w.describe()
    engine = await Engine.open(db, engine_config())
    try:
        assert engine.snapshot().paused_all
        rec = engine.get(task_id)
        assert rec is not None
        assert (rec.state, rec.pause_reasons) == (TaskState.PAUSED, ("global",))
    finally:
        await engine.stop(grace=0)
