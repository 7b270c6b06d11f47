"""Peers measured in the same run as Taskdeck: a bare sqlite3 loop and huey's SqliteHuey.

huey runs in this process: its `Consumer` with worker threads (what `huey_consumer -k
thread -w 4` runs), on a database file in a temporary directory, with huey's own SQLite
settings (WAL; `synchronous` left at SQLite's default, FULL, since `fsync=None`)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any


def bare_sqlite_lifecycles(n: int, synchronous: str = "NORMAL") -> float:
    """Lifecycles/s of the bare minimum: insert, claim, complete, one transaction each."""
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(os.path.join(d, "bare.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, payload TEXT, "
            "state TEXT, created REAL, started REAL, finished REAL)"
        )
        conn.execute("CREATE INDEX tasks_state ON tasks (state)")
        t0 = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            task_id = conn.execute(
                "INSERT INTO tasks (kind, payload, state, created) VALUES ('noop', 'null', 'pending', ?)",
                (time.time(),),
            ).lastrowid
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE tasks SET state = 'running', started = ? WHERE id = ?", (time.time(), task_id)
            )
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE tasks SET state = 'completed', finished = ? WHERE id = ?", (time.time(), task_id)
            )
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
    return n / elapsed


def _taskdeck_database(path: str, synchronous: str) -> sqlite3.Connection:
    """A database Taskdeck created (its schema, pragmas, page size), and a plain connection
    to it at that durability, for replaying Taskdeck's statements with no engine around."""
    import asyncio

    from core import Engine, EngineConfig

    async def create() -> None:
        eng = await Engine.open(path, EngineConfig(synchronous=synchronous))
        await eng.stop(grace=0)

    asyncio.run(create())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def store_statements_lifecycles(n: int, synchronous: str = "NORMAL") -> float:
    """Lifecycles/s of Taskdeck's own statements with no engine around them: on a database
    Taskdeck created, each no-op task's insert, claim and completion (with their three
    event rows) in one transaction, as the engine groups them. This is the store's share
    of an e2e run; set against the bare loop it tells the store's design from the cost
    of the Python engine around it."""
    from core.store.tasks import _INSERT_TASK_EVENT, _insert_sql
    from core.store.transitions import _CLAIM, _END_RUN_PLAIN

    with tempfile.TemporaryDirectory() as d:
        conn = _taskdeck_database(os.path.join(d, "store.db"), synchronous)
        ex = conn.execute
        t0 = time.perf_counter()
        for _ in range(n):
            now = time.time()
            ex("BEGIN IMMEDIATE")
            task_id = ex(_insert_sql(()), ("noop", "null", "pending", 0, 128, 0, now)).lastrowid
            ex(_INSERT_TASK_EVENT, (now, "submitted", task_id))
            ex(_CLAIM, (now, task_id)).fetchone()
            ex(_INSERT_TASK_EVENT, (now, "started", task_id))
            ex(_END_RUN_PLAIN, ("completed", now, 1, None, 0.0001, task_id)).fetchone()
            ex(_INSERT_TASK_EVENT, (now, "completed", task_id))
            ex("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
    return n / elapsed


def bare_sqlite_executemany(n: int) -> float:
    """Rows/s of one executemany insert in one transaction."""
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(os.path.join(d, "bare.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, payload TEXT, "
            "state TEXT, priority INTEGER, created REAL)"
        )
        now = time.time()
        rows = [("noop", f'{{"i":{i}}}', "pending", 128, now) for i in range(n)]
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO tasks (kind, payload, state, priority, created) VALUES (?, ?, ?, ?, ?)", rows
        )
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
    return n / elapsed


def schema_executemany(n: int) -> float:
    """Rows/s of the same rows written straight into Taskdeck's own schema: on a database
    Taskdeck created, one executemany of the task rows submit_many writes and one
    INSERT ... SELECT of their events, in one transaction, with nothing around them. Set
    against the bare executemany it tells what the schema (43 columns, its indexes, the
    events the history contract needs) costs from what the engine's Python costs."""
    from core.store.tasks import _insert_sql

    with tempfile.TemporaryDirectory() as d:
        conn = _taskdeck_database(os.path.join(d, "schema.db"), "NORMAL")
        now = time.time()
        rows = [("noop", f'{{"i":{i}}}', "pending", 0, 128, 3, now) for i in range(n)]
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_insert_sql(()), rows)
        conn.execute("INSERT INTO events (at, kind, task_id) SELECT ?, 'submitted', id FROM tasks", (now,))
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
    return n / elapsed


# -- huey -------------------------------------------------------------------------------


@contextlib.contextmanager
def _huey_consumer(workers: int) -> Iterator[tuple[Any, Any, Any]]:
    """A SqliteHuey on a temporary file and its thread consumer, started in this process.

    Yields (huey, consumer, completions) where completions is a `_Counter` of tasks huey
    reports complete (SIGNAL_COMPLETE, sent after a task ran and its result was stored)."""
    from huey import SqliteHuey
    from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR

    logging.getLogger("huey").setLevel(logging.CRITICAL)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with tempfile.TemporaryDirectory() as d:
        huey = SqliteHuey("bench", filename=os.path.join(d, "huey.db"))
        done = _Counter()

        @huey.signal(SIGNAL_COMPLETE)
        def _complete(signal_name: str, task: Any, *args: Any) -> None:
            done.add()

        @huey.signal(SIGNAL_ERROR)
        def _error(signal_name: str, task: Any, *args: Any) -> None:  # pragma: no cover
            done.add(error=True)

        consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=False)
        consumer.start()
        try:
            yield huey, consumer, done
        finally:
            consumer.stop(graceful=True)
            for s, h in saved.items():
                signal.signal(s, h)
            huey.storage.close()


class _Counter:
    def __init__(self) -> None:
        self.n = 0
        self.errors = 0
        self._cond = threading.Condition()

    def add(self, error: bool = False) -> None:
        with self._cond:
            self.n += 1
            self.errors += error
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.n >= n, timeout)


def huey_e2e(n: int, workers: int = 4, timeout: float = 900) -> float:
    """Tasks/s of huey: enqueue `n` no-op tasks one at a time from this thread while
    `workers` consumer threads run them; from the first enqueue to the last completion."""
    with _huey_consumer(workers) as (huey, _consumer, done):

        @huey.task()
        def noop() -> None:
            return None

        t0 = time.perf_counter()
        for _ in range(n):
            noop()
        if not done.wait_for(n, timeout):
            raise RuntimeError(f"huey ran {done.n} of {n} tasks in {timeout} s")
        elapsed = time.perf_counter() - t0
        if done.errors:
            raise RuntimeError(f"huey: {done.errors} tasks failed")
    return n / elapsed


def huey_latency(samples: int, workers: int = 4, timeout: float = 60) -> list[float]:
    """Seconds from enqueue to the task's first line, one task at a time (each waited for),
    with huey's default consumer polling (0.1 s, backing off by 1.15 up to 10 s)."""
    starts: dict[int, float] = {}
    out: list[float] = []
    with _huey_consumer(workers) as (huey, _consumer, done):

        @huey.task()
        def probe(i: int) -> None:
            starts[i] = time.perf_counter()

        time.sleep(0.5)  # an idle consumer, as the engine's side gets
        for i in range(samples):
            t0 = time.perf_counter()
            probe(i)
            if not done.wait_for(i + 1, timeout):
                raise RuntimeError(f"huey did not run probe {i} within {timeout} s")
            out.append(starts[i] - t0)
    return out
