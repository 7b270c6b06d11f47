"""A kill -9 in the middle of a files.copy (several files may be under way): reopening
resumes it; no file that was complete before the kill is copied again, every other one
is, and the checkpoint never counted a file that was not complete on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import Engine, TaskState
from core.jobs import register_builtin
from tests.crash.harness import ROOT, integrity_check, read_only
from tests.jobs.resize_worker import config
from tests.jobs.test_files import contents, finished_files, stamps, tree
from tests.jobs.test_resize_crash import Lines

FILES = 200
KILL_AFTER = 40  # files complete before the kill


def kill_in_the_middle(db: Path, src: Path, dst: Path) -> list[str]:
    """Start the worker, SIGKILL it once KILL_AFTER files are complete; returns its lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.copy_worker", str(db), str(src), str(dst)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    lines = Lines(proc)
    try:
        lines.until(lambda: lines.count("COPIED") >= KILL_AFTER, f"{KILL_AFTER} COPIED lines")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        lines.close()
    return lines.seen


@pytest.mark.crash
@pytest.mark.slow
async def test_given_kill_9_in_the_middle_of_a_copy_when_reopened_then_complete_files_are_not_copied_again(
    tmp_path: Path,
) -> None:
    src, dst, db = tmp_path / "src", tmp_path / "dst", tmp_path / "tasks.db"
    names = [f"d{i % 4}/file {i:03d}.bin" for i in range(FILES)]
    want = tree(src, names, size=200_000)
    seen = kill_in_the_middle(db, src, dst)
    task = int(next(line for line in seen if line.startswith("TASK")).split()[1])
    assert integrity_check(db) == "ok"
    finished = finished_files(src, dst)
    assert KILL_AFTER <= len(finished) < FILES, "the kill must land in the middle"
    with read_only(db) as conn:
        (saved,) = conn.execute("SELECT checkpoint FROM tasks WHERE id = ?", (task,)).fetchone()
    if saved is not None:  # counted files are complete files
        assert json.loads(saved)["items"] <= len(finished)
    before = {n: s for n, s in stamps(dst).items() if n in finished}

    engine = await Engine.open(db, config())
    try:
        register_builtin(engine)
        await engine.start()
        rec = await engine.wait(task, timeout=120)
    finally:
        await engine.stop(grace=0)
    assert rec.state == TaskState.COMPLETED, rec.error
    assert contents(dst) == want  # and no temporary files
    after = stamps(dst)
    assert {n: after[n] for n in before} == before  # complete files were not copied again
    assert rec.result["copied"] == FILES - len(finished)  # only what was not complete
