"""Peers measured in the same run as Taskdeck: a bare sqlite3 loop and huey."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time


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
            conn.execute("UPDATE tasks SET state = 'running', started = ? WHERE id = ?", (time.time(), task_id))
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE tasks SET state = 'completed', finished = ? WHERE id = ?", (time.time(), task_id))
            conn.execute("COMMIT")
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
        rows = [("noop", '{"i":%d}' % i, "pending", 128, now) for i in range(n)]
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO tasks (kind, payload, state, priority, created) VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
    return n / elapsed
