"""The connections a process keeps on one database file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from core.store.db import MEMORY, connect
from core.store.tasks import TaskSql
from core.store.transitions import Transitions
from core.store.writer import EventSink, RawEvent, Writer

T = TypeVar("T")
logger = logging.getLogger(__name__)
CHECKPOINT_EVERY_COMMITS = 500  # NORMAL: a few MB of WAL between checkpoints
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default


class Database:
    """One writer connection (through the Writer), one reader for short reads on the loop
    thread, and per-thread readers for long queries run off the loop."""

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        *,
        synchronous: str,
        publish: Callable[[list[RawEvent]], None],
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.conn = conn
        self.memory = path == MEMORY
        self.reader = conn if self.memory else connect(path, synchronous=synchronous)
        self.sink = EventSink()
        self.sql = TaskSql(self.sink)
        self.tr = Transitions(self.sql)
        self.writer = Writer(
            conn,
            sink=self.sink,
            publish=publish,
            always_threaded=synchronous.upper() != "NORMAL",
            can_thread=not self.memory,
        )
        self._local = threading.local()
        self._thread_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # WAL checkpoints copy pages into the database file and fsync it: milliseconds the
        # loop (and the window) must not wait for. They run on a thread of their own.
        self._checkpointing = False
        self._checkpointed_at = 0
        self._checkpointer: ThreadPoolExecutor | None = None
        if not self.memory and synchronous.upper() == "NORMAL":
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self.writer.after_commit = self._maybe_checkpoint
        elif not self.memory:
            # Every COMMIT runs on the writer thread already: SQLite's own checkpoint at
            # the end of a COMMIT costs the loop nothing, and it keeps the WAL from growing
            # (a growing file makes each FULL fsync pay for its size change too).
            conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")

    def _maybe_checkpoint(self, commits: int) -> None:
        if self._checkpointing or commits - self._checkpointed_at < CHECKPOINT_EVERY_COMMITS:
            return
        self._checkpointing = True
        self._checkpointed_at = commits
        if self._checkpointer is None:
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="taskdeck-checkpoint")
        self._checkpointer.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            self._read_in_thread(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        except sqlite3.Error:
            logger.warning("a WAL checkpoint of %s failed", self.path, exc_info=True)
        finally:
            self._checkpointing = False

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A short read on the calling (loop) thread."""
        return fn(self.reader)

    async def read_async(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read that may take a while, on a worker thread with its own connection."""
        if self.memory:
            return fn(self.reader)
        return await asyncio.to_thread(self._read_in_thread, fn)

    def _read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous=self.synchronous)
            self._local.conn = conn
            with self._lock:
                self._thread_conns.append(conn)
        return fn(conn)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.shutdown(wait=True)
        self.writer.close()
        with self._lock:
            for c in self._thread_conns:
                c.close()
            self._thread_conns.clear()
        if self.reader is not self.conn:
            self.reader.close()
        self.conn.close()
