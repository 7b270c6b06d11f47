"""Running `taskdeck` in-process (main(argv)) and as real processes, against a real file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.cli import main

REPO = Path(__file__).resolve().parents[2]
READY = "taskdeck worker: running on"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run(db: Path, *args: str) -> Result:
    """`taskdeck --db DB ARGS...` in this process."""
    return run_argv(["--db", str(db), *args])


def run_argv(argv: list[str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Result(code, out.getvalue(), err.getvalue())


def ok(db: Path, *args: str) -> Result:
    """Like `run`, asserting exit code 0 and a quiet stderr."""
    res = run(db, *args)
    assert res.code == 0, res
    assert res.err == "", res
    return res


def submit(db: Path, payload: dict[str, Any] | None = None, *args: str, kind: str = "demo.sleep") -> int:
    argv = ["submit", kind, "--json", *args]
    if payload is not None:
        argv.append(f"--payload={json.dumps(payload)}")
    return int(ok(db, *argv).json["id"])


def show(db: Path, task_id: int) -> dict[str, Any]:
    return ok(db, "show", str(task_id), "--json").json  # type: ignore[no-any-return]


def poll(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Check `predicate` until it holds (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def subprocess_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def run_process(*args: str, timeout: float = 60.0) -> Result:
    """`taskdeck ARGS...` as a real process."""
    done = subprocess.run(
        subprocess_argv(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Result(done.returncode, done.stdout, done.stderr)


class Process:
    """A running `taskdeck` process whose stdout lines are read by a thread."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self._stderr = stderr_path.open("w")
        # faulthandler: a process that hangs is sent SIGABRT (see wait) and prints where
        # each of its threads was, which the failure then shows.
        self.proc = subprocess.Popen(
            subprocess_argv(*args),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
        self.stderr_path = stderr_path
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        """The next stdout line for which `predicate` holds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line within {timeout} s; got {self.lines}") from None
            if line is None:
                raise AssertionError(f"process ended; got {self.lines}; stderr: {self.stderr()}")
            self.lines.append(line)
            if predicate(line):
                return line

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=10)
            raise AssertionError(
                f"the process did not exit within {timeout} s; where its threads were:\n{self.stderr()}"
            ) from None

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start `taskdeck` processes; any still running at the end are killed and closed."""
    started: list[Process] = []

    def start(*args: str) -> Process:
        p = Process(list(args), tmp_path / f"stderr-{len(started)}.txt")
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


@pytest.fixture
def worker(db: Path, spawn: Callable[..., Process]) -> Iterator[Process]:
    """A real `taskdeck worker` on `db`, ready; stopped with SIGINT at the end (exit 0)."""
    w = spawn("--db", str(db), "worker")
    w.expect(lambda line: line.startswith(READY))
    yield w
    if w.proc.poll() is None:
        w.signal(signal.SIGINT)
        assert w.wait() == 0, w.stderr()
    assert "Traceback" not in w.stderr()


def one_line_error(res: Result, code: int, *needles: str) -> None:
    """Exit `code`, nothing on stdout, one line on stderr containing every needle."""
    assert res.code == code, res
    assert res.out == "", res
    assert len(res.err_lines) == 1, res
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err, res
