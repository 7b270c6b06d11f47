"""SIGKILL while a schedule's run is active and while fires are due: on reopen the
overlap and misfire policies hold — no instant fires twice, and a missed stretch runs once."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from core import Engine
from tests.crash.conftest import Spawn
from tests.crash.harness import integrity_check
from tests.crash.worker import engine_config, register_kinds


def fired_instants(engine: Engine, sid: int) -> list[float]:
    out = []
    for rec in engine.tasks(schedule_id=sid, limit=None):
        out += [e.data["at"] for e in engine.events_of(rec.id) if e.kind == "schedule_fired"]
    return out


async def _history_fires(engine: Engine, sid: int) -> list[float]:
    recs = await engine.history(schedule_id=sid, limit=None)
    return [e.data["at"] for r in recs for e in engine.events_of(r.id) if e.kind == "schedule_fired"]


@pytest.mark.crash
async def test_given_a_schedules_run_is_active_when_killed_then_it_resumes_and_no_fire_repeats(
    tmp_path: Path, spawn: Spawn
) -> None:
    db = tmp_path / "tasks.db"
    w = spawn(db, "schedule", "--every", 0.3, "--hang", 1, "--steps", 2)
    sid = int(w.expect_word("SCHEDULED").split()[1])
    first = int(w.expect_word("FIRED").split()[1])
    w.expect(lambda line: line.startswith(f"RUNNING {first} "), "the first run started")
    await asyncio.sleep(0.7)  # a few more fires land while the run is active: overlap skips them
    w.kill()
    assert integrity_check(db) == "ok"
    engine = await Engine.open(db, engine_config())
    try:
        register_kinds(engine, fast=True)
        assert engine.get(first).state == "pending"  # type: ignore[union-attr]  # back, not lost
        await engine.start()
        await asyncio.wait_for(engine.wait(first, timeout=20), 30)
        await asyncio.sleep(1.0)  # the schedule goes on firing
        fires = fired_instants(engine, sid) + await _history_fires(engine, sid)
        assert len(fires) == len(set(fires)) and len(fires) >= 2
        assert engine.counts()["skipped"] >= 1  # fires during the active run were skipped
        await engine.schedules.pause(sid)
    finally:
        await engine.stop(grace=0)


@pytest.mark.crash
async def test_given_fires_are_missed_while_killed_then_reopening_runs_once_for_them(
    tmp_path: Path, spawn: Spawn
) -> None:
    db = tmp_path / "tasks.db"
    w = spawn(db, "schedule", "--every", 0.5, "--grace", 0.1, "--steps", 1, "--delay", 0)
    sid = int(w.expect_word("SCHEDULED").split()[1])
    w.expect_word("FIRED")
    w.kill()
    await asyncio.sleep(2.6)  # about five fires come due while nothing runs
    engine = await Engine.open(db, engine_config())
    try:
        register_kinds(engine, fast=True)
        reopened = time.time()
        await engine.start()
        deadline = time.monotonic() + 20
        while (s := engine.schedules.get(sid)) is None or not s.missed_note:
            assert time.monotonic() < deadline, "the missed fires were never noticed"
            await asyncio.sleep(0.01)
        await engine.schedules.pause(sid)  # before its next regular fire, 0.5 s on
        assert s.missed_runs >= 3 and s.missed_note.startswith(f"missed {s.missed_runs} runs — ran once at")
        since = [
            r
            for r in await engine.history(schedule_id=sid, limit=None)
            if r.created_at.timestamp() >= reopened
        ]
        since += [r for r in engine.tasks(schedule_id=sid) if r.created_at.timestamp() >= reopened]
        assert len(since) == 1  # one run for the whole missed stretch
    finally:
        await engine.stop(grace=0)
    assert json.dumps(integrity_check(db)) == '"ok"'
