"""Driving a crash worker (tests/crash/worker.py) from a test or the soak: start it, read
its marker lines as they come (with a timeout guard, never sleep-and-hope), SIGKILL it,
and look at the database it left with a plain read-only SQLite connection."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core import Engine, Recovery

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Markers:
    """What a worker reported, parsed from its marker lines."""

    acked: set[int] = field(default_factory=set)
    batches: dict[str, int] = field(default_factory=dict)  # tag -> size, announced
    acked_batches: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # tag -> ids
    checkpoints: dict[int, int] = field(default_factory=dict)  # id -> last acknowledged step
    starts: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # id -> (attempt, step)
    done: dict[int, str] = field(default_factory=dict)  # id -> terminal event
    paused: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    opened: tuple[int, ...] | None = None
    count: Counter[str] = field(default_factory=Counter)

    def feed(self, line: str) -> None:
        parts = line.split()
        if not parts:
            return
        word = parts[0]
        self.count[word] += 1
        if word == "ACK":
            self.acked.add(int(parts[1]))
        elif word == "ACKMANY":
            first, last, tag = int(parts[1]), int(parts[2]), parts[3]
            self.acked.update(range(first, last + 1))
            self.acked_batches[tag] = (first, last)
        elif word == "ACKBATCH":
            self.acked_batches[parts[1]] = None
        elif word == "BATCH":
            self.batches[parts[1]] = int(parts[2])
        elif word == "CHECKPOINT":
            self.checkpoints[int(parts[1])] = int(parts[2])
        elif word == "RUNNING":
            self.starts.setdefault(int(parts[1]), []).append((int(parts[2]), int(parts[3])))
        elif word == "DONE":
            self.done[int(parts[1])] = parts[2]
        elif word == "PAUSE":
            self.paused.append(int(parts[1]))
        elif word == "RESUME":
            self.resumed.append(int(parts[1]))
        elif word == "OPENED":
            self.opened = tuple(int(p) for p in parts[1:])


class WorkerFailed(AssertionError):
    pass


class Worker:
    """One `python -m tests.crash.worker DB SCENARIO ...` child process."""

    def __init__(self, db: str | os.PathLike[str], scenario: str, *args: Any,
                 stderr_path: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
        self.cmd = [sys.executable, "-m", "tests.crash.worker", os.fspath(db), scenario, *map(str, args)]
        self.stderr_path = os.fspath(stderr_path) if stderr_path is not None else None
        self._stderr: IO[bytes] = open(self.stderr_path or os.devnull, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self.markers = Markers()
        self.lines: list[str] = []
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name="crash-worker-reader", daemon=True)
        self._reader.start()
        self.killed = False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._queue.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._queue.put(None)

    def _take(self, line: str) -> None:
        self.lines.append(line)
        self.markers.feed(line)

    def describe(self) -> str:
        err = ""
        if self.stderr_path:
            with contextlib.suppress(OSError):
                self._stderr.flush()
                err = Path(self.stderr_path).read_text(errors="replace")[-3000:]
        tail = "\n".join(self.lines[-15:])
        return f"{' '.join(self.cmd)}\n--- last stdout lines:\n{tail}\n--- stderr:\n{err}"

    def expect(self, predicate: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        """Read lines until one satisfies `predicate`; fail after `timeout` s or at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self._eof or remaining <= 0:
                raise WorkerFailed(f"no line {what!r} within {timeout} s (exit code {self.proc.poll()})\n"
                                   + self.describe())  # fmt: skip
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
                self.proc.wait()
                raise WorkerFailed(
                    f"worker exited ({self.proc.returncode}) before {what!r}\n" + self.describe()
                )
            self._take(line)
            if predicate(line):
                return line

    def expect_word(self, word: str, timeout: float = 20.0) -> str:
        return self.expect(lambda line: line.split(" ", 1)[0] == word, word, timeout)

    def expect_lines(self, n: int, timeout: float = 20.0) -> None:
        """Read until `n` lines were seen in total."""
        if len(self.lines) < n:
            self.expect(lambda _: len(self.lines) >= n, f"{n} lines", timeout)

    def expect_count(self, word: str, n: int, timeout: float = 20.0) -> None:
        """Read until `n` lines starting with `word` were seen in total."""
        if self.markers.count[word] >= n:
            return
        self.expect(lambda line: self.markers.count[word] >= n, f"{n} x {word}", timeout)

    def kill(self, delay: float = 0.0) -> None:
        """SIGKILL after `delay` seconds (reading on meanwhile), then read what it had
        written before it died, up to EOF."""
        if delay > 0:
            time.sleep(delay)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.killed = True
        self.proc.wait()
        self._drain()

    def _drain(self) -> None:
        while not self._eof:
            try:
                line = self._queue.get(timeout=10.0)
            except queue.Empty as e:  # pragma: no cover - the reader is stuck
                raise WorkerFailed("the worker's stdout did not reach EOF after it died") from e
            if line is None:
                self._eof = True
            else:
                self._take(line)
        self._reader.join(timeout=10.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def close(self) -> None:
        """Kill (if still alive) and release everything; safe to call twice."""
        if not self._stderr.closed or self.proc.poll() is None:
            self.kill()


@contextlib.contextmanager
def read_only(db: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A plain read-only connection (no Taskdeck code involved)."""
    conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True, timeout=10.0)
    try:
        yield conn
    finally:
        conn.close()


def integrity_check(db: str | os.PathLike[str]) -> str:
    with read_only(db) as conn:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(r[0]) for r in rows)


@dataclass(frozen=True)
class RunningRow:
    id: int
    checkpoint: Any
    has_checkpoint: bool
    attempt: int
    crash_count: int
    pause_reasons: int


def running_rows(db: str | os.PathLike[str]) -> dict[int, RunningRow]:
    """Tasks left `running` in the file (read before recovery touches them)."""
    with read_only(db) as conn:
        rows = conn.execute(
            "SELECT id, checkpoint, attempt, crash_count, pause_reasons FROM tasks WHERE state = 'running'"
        ).fetchall()
    return {
        r[0]: RunningRow(r[0], json.loads(r[1]) if r[1] is not None else None, r[1] is not None,
                         r[2], r[3], r[4])
        for r in rows
    }  # fmt: skip


def task_states(db: str | os.PathLike[str]) -> dict[int, str]:
    with read_only(db) as conn:
        return dict(conn.execute("SELECT id, state FROM tasks").fetchall())


def batch_counts(db: str | os.PathLike[str]) -> dict[str, tuple[int, int, int]]:
    """batch tag -> (count, min id, max id) of the tasks whose payload names it."""
    with read_only(db) as conn:
        rows = conn.execute(
            "SELECT json_extract(payload, '$.batch') AS b, count(*), min(id), max(id) FROM tasks "
            "WHERE b IS NOT NULL GROUP BY b"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def last_recovered_event(db: str | os.PathLike[str]) -> dict[str, Any] | None:
    with read_only(db) as conn:
        row = conn.execute(
            "SELECT data FROM events WHERE kind = 'recovered' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    return None if row is None else json.loads(row[0] or "{}")


CRASH_LIMIT = 3


def expected_recovery(before: dict[int, RunningRow]) -> tuple[int, int, int]:
    """(resumed, restarted, failed) that recovery must report for these running rows."""
    failed = sum(1 for r in before.values() if r.crash_count + 1 >= CRASH_LIMIT)
    resumed = sum(1 for r in before.values() if r.crash_count + 1 < CRASH_LIMIT and r.has_checkpoint)
    restarted = len(before) - failed - resumed
    return resumed, restarted, failed


@dataclass
class ReopenReport:
    before: dict[int, RunningRow]
    recovery: Recovery
    problems: list[str]


async def reopen_and_check(db: str | os.PathLike[str], acked: set[int] | None = None,
                           checkpoints: dict[int, int] | None = None) -> ReopenReport:  # fmt: skip
    """Reopen a database a worker died on, the way the window would, and check recovery:
    integrity before and after, every task left running put back (pending or paused) with
    its checkpoint and attempt, or failed by the crash guard; `last_recovery` and the
    `recovered` event agree with that; every acknowledged id exists; acknowledged
    checkpoints (`checkpoints`: id -> step) were kept or superseded by later ones."""
    from core import Engine, TaskState
    from tests.crash.worker import engine_config

    problems: list[str] = []
    status = integrity_check(db)
    if status != "ok":
        problems.append(f"integrity_check before reopen: {status}")
    before = running_rows(db)
    engine = await Engine.open(db, engine_config())
    try:
        rec = engine.last_recovery
        want = expected_recovery(before)
        got = (rec.resumed, rec.restarted, rec.failed)
        if got != want:
            problems.append(f"last_recovery (resumed, restarted, failed) = {got}, expected {want} "
                            f"for the running rows {sorted(before)}")  # fmt: skip
        if rec.finalized:
            problems.append(f"last_recovery.finalized = {rec.finalized} (no parents here)")
        for row in before.values():
            task = engine.get(row.id)
            if task is None:
                problems.append(f"task {row.id} (running at the kill) vanished")
                continue
            if row.crash_count + 1 >= CRASH_LIMIT:
                if task.state is not TaskState.FAILED or "interrupted 3 times" not in (task.error or ""):
                    problems.append(
                        f"task {row.id}: 3rd crash should fail it, got {task.state} {task.error!r}"
                    )
                continue
            wanted = TaskState.PAUSED if row.pause_reasons else TaskState.PENDING
            if task.state is not wanted:
                problems.append(f"task {row.id}: running at the kill, now {task.state} (expected {wanted})")
            if task.attempt != row.attempt:
                problems.append(f"task {row.id}: attempt {row.attempt} became {task.attempt}")
            if task.resume_data != row.checkpoint:
                problems.append(f"task {row.id}: checkpoint {row.checkpoint!r} became {task.resume_data!r}")
        if engine.counts()["running"]:
            problems.append(f"{engine.counts()['running']} tasks still 'running' after recovery")
        if before:
            data = last_recovered_event(db)
            if data is None:
                problems.append("no 'recovered' event was written")
            elif (data.get("resumed"), data.get("restarted"), data.get("failed")) != want:
                problems.append(f"the recovered event says {data}, expected {want}")
        missing = sorted(i for i in (acked or ()) if engine.get(i) is None)
        if missing:
            problems.append(f"{len(missing)} acknowledged tasks are missing: {missing[:20]}")
        for task_id, step in (checkpoints or {}).items():
            task = engine.get(task_id)
            kept = task.resume_data if task is not None else None
            if task is not None and task.is_terminal:
                continue
            if not isinstance(kept, dict) or kept.get("step", -1) < step:
                problems.append(f"task {task_id}: checkpoint step {step} was acknowledged, found {kept!r}")
        status = integrity_check(db)
        if status != "ok":
            problems.append(f"integrity_check after recovery: {status}")
    finally:
        await engine.stop(grace=0)
    return ReopenReport(before, rec, problems)


@contextlib.asynccontextmanager
async def drained(
    db: str | os.PathLike[str], *, timeout: float = 60.0, concurrency: int = 8, resume_paused: bool = True
) -> AsyncIterator[Engine]:
    """Open `db`, register the worker's kinds (no sleeps), start, resume what is paused,
    and yield the engine once no task is active any more, or after `timeout` s (the
    caller sees what is still active: stuck tasks)."""
    import asyncio

    from core import Engine, InvalidState, WaitTimeout
    from tests.crash.worker import engine_config, register_kinds

    engine = await Engine.open(db, engine_config(concurrency))
    try:
        register_kinds(engine, fast=True)
        await engine.start()
        if resume_paused:
            if engine.snapshot().paused_all:
                await engine.resume_all()
            for task in engine.tasks(states=["paused"], limit=None):
                with contextlib.suppress(InvalidState):
                    await engine.resume(task.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while active := engine.tasks(limit=None):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(WaitTimeout):
                await engine.wait(active[-1].id, timeout=min(remaining, 5.0))
            await asyncio.sleep(0.01)
        yield engine
    finally:
        await engine.stop(grace=0)


def guard_candidates(reports: list[ReopenReport]) -> set[int]:
    """Tasks that were running at 3 kills in a row (reports: one per kill, in order): the
    only ones the crash guard may fail. (A superset: a run that ended cleanly between two
    kills, e.g. paused and resumed, resets the engine's count but not this streak.)"""
    streak: Counter[int] = Counter()
    found: set[int] = set()
    for report in reports:
        streak = Counter({i: streak[i] + 1 for i in report.before})
        found.update(i for i, n in streak.items() if n >= CRASH_LIMIT)
    return found
