"""The connections a process keeps on one database file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from core.store.db import MEMORY, connect
from core.store.tasks import TaskSql
from core.store.transitions import Transitions
from core.store.writer import EventSink, RawEvent, Writer

T = TypeVar("T")


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
        self.writer.close()
        with self._lock:
            for c in self._thread_conns:
                c.close()
            self._thread_conns.clear()
        if self.reader is not self.conn:
            self.reader.close()
        self.conn.close()
