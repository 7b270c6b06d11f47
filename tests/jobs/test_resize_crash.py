"""A kill -9 in the middle of a 200-image resize: reopening resumes it, and no image that
was finished before the kill is resized again."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import Engine, TaskState
from core.jobs import register_builtin
from tests.crash.harness import ROOT, integrity_check, read_only
from tests.jobs.images import jpeg
from tests.jobs.resize_worker import config

IMAGES = 200
KILL_AFTER = 40  # completed children before the kill


class Lines:
    """The worker's stdout, line by line, with a timeout guard (never sleep-and-hope)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.queue.put(raw.decode().rstrip("\n"))
        self.queue.put(None)

    def until(self, predicate: object, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s; lines: {self.seen[-10:]}")
            try:
                line = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"the worker exited ({self.proc.wait()}) before {what}: {self.seen[-10:]}"
                )
            self.seen.append(line)

    def close(self) -> None:
        """After the worker died: read what it wrote up to EOF and release the pipe."""
        self.reader.join(timeout=10)
        while not self.queue.empty():
            line = self.queue.get()
            if line is not None:
                self.seen.append(line)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def count(self, word: str) -> int:
        return sum(1 for line in self.seen if line.split(" ", 1)[0] == word)


def outputs_of_completed_children(db: Path) -> dict[int, str]:
    with read_only(db) as conn:
        rows = conn.execute(
            "SELECT id, payload FROM tasks WHERE kind = 'resize.image' AND state = 'completed'"
        ).fetchall()
    return {i: json.loads(p)["dest"] for i, p in rows}


def starts(db: Path) -> dict[int, int]:
    with read_only(db) as conn:
        return dict(conn.execute(
            "SELECT task_id, count(*) FROM events WHERE kind = 'started' GROUP BY task_id"
        ).fetchall())  # fmt: skip


def kill_in_the_middle(db: Path, src: Path, out: Path) -> int:
    """Start the worker, SIGKILL it (and its worker processes) once KILL_AFTER children
    completed; returns the parent's id."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.resize_worker", str(db), str(src), str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    lines = Lines(proc)
    try:
        lines.until(lambda: lines.count("DONE") >= KILL_AFTER, f"{KILL_AFTER} DONE lines")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the engine and its worker processes, at once
        proc.wait()
        lines.close()
    return int(next(line for line in lines.seen if line.startswith("PARENT")).split()[1])


@pytest.mark.crash
@pytest.mark.slow
async def test_given_kill_9_in_the_middle_of_200_images_when_reopened_then_finished_images_are_not_redone(
    tmp_path: Path,
) -> None:
    src, out, db = tmp_path / "photos", tmp_path / "out", tmp_path / "tasks.db"
    for i in range(IMAGES):
        jpeg(src / f"photo {i:03d}.jpg", 800, 600, quality=85)
    parent = kill_in_the_middle(db, src, out)
    assert integrity_check(db) == "ok"
    finished = outputs_of_completed_children(db)
    assert KILL_AFTER <= len(finished) < IMAGES, "the kill must land in the middle"
    stamps = {i: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for i, p in finished.items()}

    engine = await Engine.open(db, config())
    try:
        register_builtin(engine)
        await engine.start()
        rec = await engine.wait(parent, timeout=120)
    finally:
        await engine.stop(grace=0)
    assert rec.state == TaskState.COMPLETED, rec.error
    assert rec.result["count"] == IMAGES and rec.result["failed"] == 0
    assert rec.result["resized"] + rec.result["skipped"] == IMAGES
    runs = starts(db)
    assert {i: runs[i] for i in finished} == dict.fromkeys(finished, 1)  # each ran once, before the kill
    assert {i: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for i, p in finished.items()} == stamps
    made = sorted(p.name for p in out.iterdir())
    assert made == sorted(f"photo {i:03d}.jpg" for i in range(IMAGES))  # and no temporary files
    with read_only(db) as conn:
        states = dict(conn.execute(
            "SELECT state, count(*) FROM tasks WHERE kind = 'resize.image' GROUP BY state"
        ).fetchall())  # fmt: skip
    assert states == {"completed": IMAGES}
