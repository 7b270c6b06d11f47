"""Write transactions: inline on the loop thread while they are short, shared commits on
a worker thread while a long operation (or a FULL-durability fsync) holds the connection.

Every operation is a function of the connection. Operations queued together run in one
`BEGIN IMMEDIATE ... COMMIT`, each inside a savepoint so one failing operation rolls back
alone. Nobody is told an operation is done before its commit: futures resolve and
callbacks run only after COMMIT returns, in the order the operations were queued, and the
events the operations wrote are published then (see `EventSink`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.errors import EngineClosed

logger = logging.getLogger(__name__)
_MOVED = object()

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]

# The loop thread never waits long for the write lock: if a client in another process
# holds it, the work moves to the worker thread, which waits as long as it takes.
INLINE_BUSY_MS = 20
THREAD_BUSY_SECONDS = 60.0


class _Queued:
    __slots__ = ("callback", "error", "events", "fn", "future", "long", "result")

    def __init__(
        self,
        fn: Op[Any],
        future: asyncio.Future[Any] | None = None,
        callback: Callable[[Any, BaseException | None], None] | None = None,
        long: bool = False,
    ) -> None:
        self.fn = fn
        self.future = future
        self.callback = callback
        self.long = long
        self.events: list[RawEvent] | None = None
        self.result: Any = None
        self.error: BaseException | None = None


# (seq, at, kind, task_id, schedule_id, scope, data): an events row as written. Event
# records are built from these only when someone subscribes (see EventBus).
RawEvent = tuple[int, float, str, int | None, int | None, str | None, dict[str, Any] | None]


class EventSink:
    """Collects the events operations write; the writer publishes them after commit."""

    def __init__(self) -> None:
        self.pending: list[RawEvent] = []


class Writer:
    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        sink: EventSink,
        publish: Callable[[list[RawEvent]], None],
        always_threaded: bool = False,
        can_thread: bool = True,
    ) -> None:
        self._conn = conn
        self._sink = sink
        self._publish = publish
        self._always_threaded = always_threaded and can_thread
        self._can_thread = can_thread
        self._queue: list[_Queued] = []
        self._busy = False  # a batch is running on the worker thread
        self._closed = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="taskdeck-writer") if can_thread else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = threading.Event()
        self._idle.set()
        conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_MS}")
        self.commits = 0
        self.after_commit: Callable[[int], None] | None = None  # e.g. the checkpointer

    # -- queueing ---------------------------------------------------------------------

    def enqueue(
        self,
        fn: Op[T],
        callback: Callable[[T | None, BaseException | None], None] | None = None,
    ) -> None:
        """Queue `fn` for the next commit; `callback(result, error)` runs after it."""
        if self._closed:
            raise EngineClosed("the database is closed")
        self._queue.append(_Queued(fn, callback=callback))

    async def run(self, fn: Op[T], *, long: bool = False) -> T:
        """Run `fn` in a transaction and return its result once committed."""
        if self._closed:
            raise EngineClosed("the database is closed")
        if not long and not self._busy and not self._always_threaded:
            if not self._queue:
                fast = self._run_alone(fn)
                if fast is not _MOVED:
                    return fast  # type: ignore[no-any-return]
            self._queue.append(item := _Queued(fn))
            self._commit_inline()
            if item.future is not None:  # moved to the thread (the write lock was busy)
                return await item.future  # type: ignore[no-any-return]
            if item.error is not None:
                raise item.error
            return item.result  # type: ignore[no-any-return]
        loop = self._get_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Queued(fn, future=fut, long=long and self._can_thread))
        self.flush()
        return await fut

    def flush(self) -> None:
        """Commit what is queued now (inline) or hand it to the worker thread."""
        if not self._queue or self._busy:
            return
        if self._always_threaded or any(q.long for q in self._queue):
            self._start_thread_batch()
        else:
            self._commit_inline()

    @property
    def has_pending(self) -> bool:
        return bool(self._queue)

    # -- inline path ------------------------------------------------------------------

    def _run_alone(self, fn: Op[Any]) -> Any:
        """The common case: one operation, nothing queued, the connection free."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if _is_busy(e) and self._can_thread:
                return _MOVED  # the slow path hands it to the thread
            raise
        sink = self._sink.pending
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            sink.clear()
            self._rollback()
            raise
        self._committed()
        if sink:
            events = sink[:]
            sink.clear()
            self._publish(events)
        return result

    def _commit_inline(self) -> None:
        batch, self._queue = self._queue, []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or not self._can_thread:
                self._deliver(batch, _failed(batch, e))
                return
            # Another process holds the write lock: wait for it on the thread instead.
            loop = self._get_loop()
            for q in batch:
                if q.future is None and q.callback is None:
                    q.future = loop.create_future()
            self._queue = batch + self._queue
            self._start_thread_batch(try_inline=False)
            return
        try:
            outcomes = self._execute(batch)
            self._conn.execute("COMMIT")
        except BaseException as e:
            self._rollback()
            outcomes = _failed(batch, e)
        else:
            self._committed()
        self._deliver(batch, outcomes)

    # -- thread path ------------------------------------------------------------------

    def _start_thread_batch(self, try_inline: bool = True) -> None:
        assert self._executor is not None
        batch, self._queue = self._queue, []
        loop = self._get_loop()
        for q in batch:
            if q.future is None and q.callback is None:
                q.future = loop.create_future()
        self._busy = True
        self._idle.clear()
        # Short operations run here, on the loop thread (microseconds each), and only the
        # COMMIT, where a FULL-durability fsync waits, goes to the thread. The thread then
        # needs no GIL for Python work while the loop runs, and a failing operation is
        # rolled back here as on the inline path. Long operations, or a write lock held
        # by another process (the loop never waits for it here), take the whole
        # transaction to the thread.
        outcomes: list[tuple[Any, BaseException | None]] | None = None
        if try_inline and not any(q.long for q in batch):
            conn = self._conn
            try:
                conn.execute("PRAGMA busy_timeout = 0")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                finally:
                    conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_MS}")
            except sqlite3.OperationalError as e:
                if not _is_busy(e):
                    self._stop_batch(batch, e)
                    return
            else:
                try:
                    outcomes = self._execute(batch)
                except BaseException as e:
                    self._rollback()
                    self._stop_batch(batch, e)
                    return

        def work() -> None:
            try:
                if outcomes is None:
                    done = self._run_batch_blocking(batch)
                else:
                    done = self._commit_blocking(batch, outcomes)
            except BaseException as e:  # the write lock stayed busy, or a failed rollback
                self._rollback()
                done = _failed(batch, e)
            try:
                loop.call_soon_threadsafe(self._thread_done, batch, done)
            except RuntimeError:  # loop closed while we ran
                self._idle.set()

        self._executor.submit(work)
        # Give the GIL away once so the writer thread can start its COMMIT (and fsync) now,
        # rather than when the loop next waits: handlers the loop runs meanwhile would
        # hold the fsync back. Measured: FULL e2e about 7% faster.
        time.sleep(0)

    def _stop_batch(self, batch: list[_Queued], error: BaseException) -> None:
        """The batch failed before its COMMIT went to the thread: it fails as a whole."""
        self._busy = False
        self._idle.set()
        self._deliver(batch, _failed(batch, error))

    def _commit_blocking(
        self, batch: list[_Queued], outcomes: list[tuple[Any, BaseException | None]]
    ) -> list[tuple[Any, BaseException | None]]:
        try:
            self._conn.execute("COMMIT")
        except BaseException as e:
            self._rollback()
            return _failed(batch, e)
        self._committed()
        return outcomes

    def _run_batch_blocking(self, batch: list[_Queued]) -> list[tuple[Any, BaseException | None]]:
        deadline = time.monotonic() + THREAD_BUSY_SECONDS
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if not _is_busy(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        return self._commit_blocking(batch, self._execute(batch))

    def _thread_done(self, batch: list[_Queued], outcomes: list[tuple[Any, BaseException | None]]) -> None:
        self._busy = False
        self._idle.set()
        self._deliver(batch, outcomes)
        # Wait one turn of the loop before the next batch: callers woken just now (a
        # submit loop, say) queue their next write first, and it shares that commit.
        self._get_loop().call_soon(self.flush)

    # -- shared -----------------------------------------------------------------------

    def _execute(self, batch: list[_Queued]) -> list[tuple[Any, BaseException | None]]:
        """Run a batch inside the open transaction. Operations from `run` (which may fail on
        bad input) get a savepoint each when they share the batch; the engine's own
        operations from `enqueue` do not: if one of them fails, the whole batch fails."""
        conn = self._conn
        sink = self._sink.pending
        outcomes: list[tuple[Any, BaseException | None]] = []
        shared = len(batch) > 1
        for q in batch:
            mark = len(sink)
            isolate = shared and q.callback is None
            if isolate:
                conn.execute("SAVEPOINT op")
            try:
                result = q.fn(conn)
            except BaseException as e:
                if not isolate:
                    del sink[:]
                    self._rollback()
                    conn.execute("BEGIN IMMEDIATE")  # the caller commits (nothing)
                    if shared:
                        return _failed(batch, e)
                    outcomes.append((None, e))
                    continue
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                del sink[mark:]
                outcomes.append((None, e))
                continue
            if isolate:
                conn.execute("RELEASE op")
            if len(sink) > mark:
                q.events = sink[mark:]
            outcomes.append((result, None))
        sink.clear()
        return outcomes

    def _committed(self) -> None:
        self.commits += 1
        if self.after_commit is not None:
            self.after_commit(self.commits)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # no transaction was active
            self._conn.execute("ROLLBACK")

    def _deliver(self, batch: list[_Queued], outcomes: list[tuple[Any, BaseException | None]]) -> None:
        events = [ev for q in batch if q.events for ev in q.events]
        if events:
            self._publish(events)
        for q, (result, err) in zip(batch, outcomes, strict=True):
            if q.callback is not None:
                try:
                    q.callback(result, err)
                except Exception:
                    logger.exception("error in a post-commit callback")
            elif q.future is not None:
                if q.future.done():
                    continue
                if err is not None:
                    q.future.set_exception(err)
                else:
                    q.future.set_result(result)
            else:
                q.error = err
                q.result = result

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def wait_idle_blocking(self, timeout: float) -> bool:
        return self._idle.wait(timeout)

    async def drain(self) -> None:
        """Commit everything queued and wait for the worker thread to finish."""
        while self._queue or self._busy:
            if self._busy:
                await asyncio.sleep(0.001)
            else:
                self.flush()

    def close(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """Another connection holds the write lock (SQLITE_BUSY or SQLITE_LOCKED)."""
    return "locked" in str(error) or "busy" in str(error)


def _failed(batch: list[_Queued], error: BaseException) -> list[tuple[Any, BaseException | None]]:
    """Outcomes of a batch whose COMMIT failed: every operation failed, no event happened."""
    for q in batch:
        q.events = None
    return [(None, error) for _ in batch]
