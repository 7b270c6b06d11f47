"""SIGKILL while a parent waits for its children, and while its finalize runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import TaskState
from tests.crash.conftest import Spawn
from tests.crash.harness import drained, integrity_check


def side_lines(side: Path) -> list[str]:
    return side.read_text().splitlines() if side.exists() else []


@pytest.mark.crash
async def test_given_a_waiting_parent_when_killed_then_reopening_finishes_children_and_finalizes_once(
    tmp_path: Path, spawn: Spawn
) -> None:
    db, side = tmp_path / "tasks.db", tmp_path / "side.txt"
    w = spawn(db, "tree", "--count", 3, "--hang", 1, "--side", side)
    parent = int(w.expect_word("WAITING").split()[1])
    w.kill()
    assert integrity_check(db) == "ok"
    async with drained(db) as engine:
        rec = engine.get(parent)
        assert rec is not None and rec.state is TaskState.COMPLETED and rec.result == 0 + 1 + 2
        assert sorted(k.state for k in engine.children(parent)) == ["completed"] * 3
    lines = side_lines(side)
    assert lines.count(f"FINALIZE {parent}") == 1
    photos = [ln for ln in lines if ln.startswith("PHOTO")]
    assert len(photos) == len(set(photos)) == 3  # each child ran to the end exactly once


@pytest.mark.crash
async def test_given_finalize_running_when_killed_then_finalize_runs_once_more_and_children_never_again(
    tmp_path: Path, spawn: Spawn
) -> None:
    db, side = tmp_path / "tasks.db", tmp_path / "side.txt"
    w = spawn(db, "tree", "--count", 4, "--hang-finalize", "--side", side)
    parent = int(w.expect_word("FINALIZING").split()[1])
    w.kill()
    assert integrity_check(db) == "ok"
    photos_before = [ln for ln in side_lines(side) if ln.startswith("PHOTO")]
    assert len(photos_before) == 4
    async with drained(db) as engine:
        assert engine.last_recovery.resumed + engine.last_recovery.restarted == 1
        rec = engine.get(parent)
        assert rec is not None and rec.state is TaskState.COMPLETED and rec.result == 0 + 1 + 2 + 3
    lines = side_lines(side)
    assert lines.count(f"FINALIZE {parent}") == 2  # the killed run and the one that finished
    assert [ln for ln in lines if ln.startswith("PHOTO")] == photos_before  # no child ran again
