"""The engine: owns the database, dispatches tasks by priority and runs their handlers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import random
import traceback as tb_module
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from core.clock import Clock, SystemClock, from_ts
from core.context import SyncTaskContext, TaskContext
from core.dispatch import MirrorTask, ReadyQueue
from core.errors import (
    EngineClosed,
    Interrupted,
    InvalidArgument,
    InvalidState,
    Permanent,
    TaskNotFound,
    UnknownKind,
    WaitTimeout,
)
from core.eventbus import EventBus
from core.lock import EngineLock
from core.registry import Handler, KindSpec, info_from_json, info_to_json, make_spec
from core.store import queries as q
from core.store.database import Database
from core.store.db import MEMORY, connect, migrate
from core.store.tasks import NewTask, SubmitEffects, dumps
from core.store.transitions import settings_get, settings_put
from core.timers import Timers
from core.types import (
    DEFAULT_RETRY,
    JSON,
    Event,
    EventKind,
    GroupInfo,
    IoBudget,
    KindInfo,
    KindStats,
    LogLine,
    PauseReason,
    Priority,
    Recovery,
    RetryPolicy,
    RunIn,
    RunningTask,
    Snapshot,
    Submission,
    SubmitOutcome,
    SubmitResult,
    TaskRecord,
    TaskState,
)
from core.validation import build_task, check_priority, check_seconds, new_task

logger = logging.getLogger(__name__)

T = TypeVar("T")

CRASH_LIMIT = 3
PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress writes to the task row
SPEED_WINDOW = 1.0  # seconds between speed samples (EWMA, alpha 0.3)
SPEED_ALPHA = 0.3
PRUNE_EVERY = 256  # terminal writes between retention checks
PRUNE_BATCH = 500
PRUNE_PAUSE = 1.0  # seconds between retention batches while tasks run
INBOX_POLL_SECONDS = 0.2
DEFAULT_KEEP = 10_000
DEFAULT_DAYS = 90.0
MAX_CONCURRENCY_LIMIT = 1024

_OK, _INTERRUPTED, _PERMANENT, _ERROR = range(4)
_PAUSE_BITS = PauseReason.USER | PauseReason.PREEMPTED
# Requests a client may leave in the inbox for the running engine.
INBOX_OPS = frozenset(
    {
        "cancel",
        "pause",
        "resume",
        "set_priority",
        "move",
        "pause_all",
        "resume_all",
        "pause_group",
        "resume_group",
        "set_max_concurrency",
        "set_group_limit",
        "set_retention",
        "hold",
        "release",
        "interrupt",
        "cancel_where",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Engine settings. Settings changed through the API (concurrency, limits, pauses,
    retention) are stored in the database and win over these defaults on the next open."""

    max_concurrency: int = 4
    preempt_at: int | None = Priority.HIGH
    preempt_grace: float = 5.0
    io_threshold: float = 0.8
    io_capacity: Mapping[str, float] | None = None
    resource_sampler: Callable[[], Mapping[str, float]] | None = None
    pressure_sources: tuple[Callable[[], float], ...] = ()
    clock: Clock | None = None
    synchronous: str = "NORMAL"
    retention_keep: int | None = DEFAULT_KEEP
    retention_days: float | None = DEFAULT_DAYS
    cleanup_timeout: float = 30.0
    process_workers: int | None = None  # default: the number of CPUs
    process_start_method: str = "spawn"

    def __post_init__(self) -> None:
        if isinstance(self.max_concurrency, bool) or not isinstance(self.max_concurrency, int):
            raise InvalidArgument(f"max_concurrency: must be an int, got {self.max_concurrency!r}")
        if not 1 <= self.max_concurrency <= MAX_CONCURRENCY_LIMIT:
            raise InvalidArgument(
                f"max_concurrency: must be in 1..{MAX_CONCURRENCY_LIMIT}, got {self.max_concurrency}"
            )
        if self.preempt_at is not None:
            check_priority(self.preempt_at, "preempt_at")
        for name in ("preempt_grace", "cleanup_timeout"):
            try:
                check_seconds(name, getattr(self, name), positive=False)
            except ValueError as e:
                raise InvalidArgument(str(e)) from e
        if self.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise InvalidArgument(f"synchronous: must be NORMAL, FULL or EXTRA, got {self.synchronous!r}")
        if not 0 < self.io_threshold <= 1:
            raise InvalidArgument(f"io_threshold: must be in (0, 1], got {self.io_threshold!r}")
        if self.process_start_method not in ("spawn", "forkserver"):
            raise InvalidArgument("process_start_method: must be 'spawn' or 'forkserver' (never fork)")


class _Run:
    """One execution of a task (an attempt, or the rest of one after a pause)."""

    __slots__ = (
        "atask",
        "checkpoint",
        "checkpoint_text",
        "ctx",
        "dirty",
        "done",
        "engine",
        "eta",
        "finished",
        "grace_timer",
        "interrupt",
        "io",
        "message",
        "payload",
        "policy",
        "progress",
        "rate_done",
        "rate_frac",
        "rate_t",
        "schedule_id",
        "spec",
        "speed",
        "started_at",
        "task",
        "timeout",
        "timeout_timer",
        "total",
        "worker",
    )

    def __init__(self, engine: Engine, task: MirrorTask) -> None:
        self.engine = engine
        self.task = task
        self.payload: JSON = None
        self.checkpoint: JSON = None
        self.checkpoint_text: str | None = None
        self.policy = DEFAULT_RETRY
        self.timeout: float | None = None
        self.schedule_id: int | None = None
        self.spec: KindSpec | None = None
        self.interrupt: str | None = None
        self.started_at = 0.0
        self.io = [0, 0, 0, 0]
        self.progress: float | None = None
        self.message: str | None = None
        self.done: int | None = None
        self.total: int | None = None
        self.speed: float | None = None
        self.eta: float | None = None
        self.rate_t: float | None = None
        self.rate_done = 0
        self.rate_frac = 0.0
        self.dirty = False
        self.finished = False
        self.atask: asyncio.Task[None] | None = None
        self.grace_timer: Any = None
        self.timeout_timer: Any = None
        self.worker: Any = None  # the process pool's handle while a process runs it
        self.ctx = TaskContext(self)


@dataclass(slots=True)
class _Decision:
    state: str
    event: EventKind
    mask: int = 0
    data: dict[str, Any] | None = None
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    run_at: float | None = None
    attempt: int = 1
    keep_checkpoint: bool = False
    progress: float | None = None
    cleanup: str | None = None  # reason to run the kind's cleanup hook


@dataclass(slots=True)
class _Settings:
    max_concurrency: int
    retention_keep: int | None
    retention_days: float | None
    paused_all: bool = False
    group_limits: dict[str, int] = field(default_factory=dict)
    paused_groups: dict[str, float | None] = field(default_factory=dict)  # name -> until


class _Opener:
    """`await Engine.open(...)` or `async with Engine.open(...) as engine`."""

    def __init__(self, path: str, config: EngineConfig | None) -> None:
        self._path = path
        self._config = config
        self._engine: Engine | None = None

    def __await__(self) -> Generator[Any, None, Engine]:
        return Engine._open(self._path, self._config).__await__()

    async def __aenter__(self) -> Engine:
        self._engine = await Engine._open(self._path, self._config)
        return self._engine

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None:
            await self._engine.stop()


def _format_error(exc: BaseException) -> tuple[str, str]:
    message = str(exc) or type(exc).__name__
    remote = hasattr(exc, "remote_traceback")
    if not isinstance(exc, Permanent) and not remote and type(exc).__name__ not in message:
        message = f"{type(exc).__name__}: {message}"
    summary = getattr(exc, "remote_traceback", None) or "".join(
        tb_module.format_exception(type(exc), exc, exc.__traceback__, limit=8)
    )
    return message, summary[-4000:]


class Engine:
    """A durable priority task queue on SQLite. Open with `await Engine.open(path)`."""

    def __init__(self, path: str, config: EngineConfig, conn: Any, lock: EngineLock | None) -> None:
        self.path = path
        self.config = config
        self._clock: Clock = config.clock or SystemClock()
        self._lock = lock
        self._db = Database(path, conn, synchronous=config.synchronous, publish=self._on_committed)
        self._kinds: dict[str, KindSpec] = {}
        self._tasks: dict[int, MirrorTask] = {}
        self._ready = ReadyQueue()
        self._timers = Timers(self._clock)
        self._running: dict[int, _Run] = {}
        self._group_running: dict[str | None, int] = {}
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._log_buffer: list[tuple[int, float, str, str]] = []
        self._settings = _Settings(config.max_concurrency, config.retention_keep, config.retention_days)
        self._rng = random.Random()
        self._bus: EventBus = EventBus(self._read_events_after, 0)
        self._tick_pending = False
        self._dispatching = False
        self._held = False
        self._idle: bool | None = None
        self._closed = False
        self._started = False
        self._main: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._stop_event: asyncio.Event | None = None
        self._progress_written_at = 0.0
        self._progress_timer: asyncio.TimerHandle | None = None
        self._terminal_since_prune = 0
        self._prune_running = False
        self._threads: Any = None
        self._procs: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._data_version = 0
        self.last_recovery = Recovery()

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], config: EngineConfig | None = None) -> _Opener:
        """Create or migrate the database, take the engine lock and recover from a crash.

        Raises EngineLocked (naming the holder's pid), SchemaTooNew or CorruptDatabase."""
        return _Opener(os.fspath(path), config)

    @classmethod
    async def _open(cls, path: str, config: EngineConfig | None) -> Engine:
        config = config or EngineConfig()
        lock = None
        if path != MEMORY:
            lock = EngineLock(path)
            await asyncio.to_thread(lock.acquire)
        try:
            conn = await asyncio.to_thread(connect, path, synchronous=config.synchronous)
            try:
                await asyncio.to_thread(migrate, conn, path)
            except BaseException:
                conn.close()
                raise
            engine = cls(path, config, conn, lock)
            engine._loop = asyncio.get_running_loop()
            await engine._recover()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return engine

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def _recover(self) -> None:
        db = self._db
        now = self._now()
        self._bus = EventBus(self._read_events_after, db.read(q.last_event_seq))

        def recover(conn: Any) -> dict[str, int]:
            counts = db.tr.recover_running(conn, now, CRASH_LIMIT)
            if any(counts.values()):
                db.sql.emit(conn, EventKind.RECOVERED, now, None, {**counts, "finalized": 0})
            return counts

        counts = await db.writer.run(recover, long=True)  # off the loop: may touch many rows
        self.last_recovery = Recovery(**counts)
        if self.last_recovery.total:
            logger.info("recovered %s: %s", self.path, counts)
        settings = db.read(settings_get)
        s = self._settings
        s.max_concurrency = int(settings.get("max_concurrency", s.max_concurrency))
        s.retention_keep = settings.get("retention_keep", s.retention_keep)
        s.retention_days = settings.get("retention_days", s.retention_days)
        s.paused_all = bool(settings.get("paused_all", False))
        for name, limit, paused, until in db.read(
            lambda c: c.execute("SELECT name, max_concurrency, paused, paused_until FROM groups").fetchall()
        ):
            if limit is not None:
                s.group_limits[name] = limit
            if paused:
                s.paused_groups[name] = until
        self._data_version = db.conn.execute("PRAGMA data_version").fetchone()[0]
        for row in await db.read_async(db.sql.load_active):
            self._adopt(row)

    def _adopt(self, row: tuple[Any, ...]) -> MirrorTask:
        """Put a task row (from load_active) into the mirror and, if ready, the queue."""
        (
            id_,
            kind,
            priority,
            pos,
            grp,
            state,
            reasons,
            run_at,
            expires_at,
            parent_id,
            started,
            label,
            attempt,
        ) = row
        t = self._tasks.get(id_)
        if t is None:
            t = MirrorTask(
                id_,
                kind,
                priority,
                float(pos),
                grp,
                state,
                reasons,
                run_at,
                expires_at,
                parent_id,
                bool(started),
                label,
                attempt,
            )
            self._tasks[id_] = t
        else:  # refreshed: the row changed behind the mirror's back
            self._ready.discard(t)
            self._cancel_timers(t)
            t.kind, t.priority, t.pos, t.group, t.state, t.reasons = (
                kind,
                priority,
                float(pos),
                grp,
                state,
                reasons,
            )
            t.run_at, t.expires_at, t.parent_id, t.started, t.label, t.attempt = (
                run_at,
                expires_at,
                parent_id,
                bool(started),
                label,
                attempt,
            )
        if state == TaskState.PENDING:
            self._make_pending(t)
        if expires_at is not None and not t.started and state != TaskState.RUNNING:
            t.ttl_timer = self._timers.call_at(expires_at, lambda: self._on_ttl(t))
        return t

    # -- registration -------------------------------------------------------------------

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        priority: int = Priority.NORMAL,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        io: IoBudget | None = None,
        group: str | None = None,
        ttl: float | None = None,
        finalize: Handler | None = None,
        cleanup: Callable[..., Awaitable[None]] | None = None,
        run_in: RunIn = "loop",
        schema: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> None:
        """Register `handler` for `kind` with the defaults its tasks get.

        `handler(ctx, payload)` is async for run_in="loop", a plain function for "thread"
        and "process" (a process handler must be importable: a module-level function).
        `cleanup(ctx, payload, reason)` runs when a task is cancelled or fails for good."""
        spec = make_spec(
            kind,
            handler,
            priority=priority,
            retry=retry,
            timeout=timeout,
            io=io,
            group=group,
            ttl=ttl,
            finalize=finalize,
            cleanup=cleanup,
            run_in=run_in,
            schema=schema,
            description=description,
        )
        self._kinds[kind] = spec
        if self._started:
            self._publish_kinds()
            self._request_tick()

    def task(self, kind: str, **defaults: Any) -> Callable[[Handler], Handler]:
        """Decorator form of `register`."""

        def decorate(fn: Handler) -> Handler:
            self.register(kind, fn, **defaults)
            return fn

        return decorate

    def kinds(self) -> list[KindInfo]:
        """Registered kinds with their payload schema and defaults."""
        return [s.info for _, s in sorted(self._kinds.items())]

    def _publish_kinds(self) -> None:
        rows = [(k, dumps(info_to_json(s.info))) for k, s in self._kinds.items()]

        def write(conn: Any) -> None:
            conn.executemany(
                "INSERT INTO kinds (name, info) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET info = excluded.info",
                rows,
            )

        self._db.writer.enqueue(write)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start dispatching, the timers and the watch for clients' requests."""
        self._check_open()
        if self._started:
            return
        self._started = True
        self._dispatching = True
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._main = asyncio.create_task(self._serve(ready), name=f"taskdeck engine {self.path}")
        await ready
        self._publish_kinds()
        for name, until in list(self._settings.paused_groups.items()):
            if until is not None:
                self._timers.call_at(until, functools.partial(self._auto_resume_group, name, until))
        self._request_tick()

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        assert self._stop_event is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            timers = tg.create_task(self._timers.run(), name="taskdeck timers")
            watcher = tg.create_task(self._watch_clients(), name="taskdeck client watch")
            ready.set_result(None)
            await self._stop_event.wait()
            timers.cancel()
            watcher.cancel()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def hold(self) -> Awaitable[None]:
        """Stop starting new tasks; running ones go on ("stop after current")."""
        return self._set_hold(True)

    def release(self) -> Awaitable[None]:
        """Undo `hold`."""
        return self._set_hold(False)

    async def _set_hold(self, held: bool) -> None:
        self._check_open()
        if self._held == held:
            return
        self._held = held
        await self._emit(EventKind.HELD if held else EventKind.RELEASED)
        self._request_tick()

    @property
    def is_held(self) -> bool:
        return self._held

    async def stop(self, grace: float = 10.0) -> None:
        """Stop dispatching, let running tasks finish for up to `grace` seconds, then
        interrupt the rest (they stay resumable: pending at the next open) and close."""
        if self._closed:
            return
        grace = check_seconds("grace", grace, positive=False)
        self._dispatching = False
        # Claims already queued commit now and start; they are interrupted with the rest.
        self._db.writer.flush()
        await self._db.writer.drain()
        runs = [r for r in self._running.values() if r.atask is not None]
        if runs and grace > 0:
            await asyncio.wait([r.atask for r in runs if r.atask], timeout=grace)
        for run in list(self._running.values()):
            if not run.finished:
                self._interrupt(run, "stop", grace=0.0)
        pending = [r.atask for r in self._running.values() if r.atask is not None and not r.atask.done()]
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        for run in list(self._running.values()):  # threads that will not return: record them
            if not run.finished:
                self._commit_decision(run, self._decide(run, _INTERRUPTED, None))
        self._flush_buffers(force=True)
        self._db.writer.flush()
        await self._db.writer.drain()
        if self._stop_event is not None:
            self._stop_event.set()
        if self._main is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
        if self._procs is not None:
            await self._procs.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        self._close_db()

    def _close_db(self) -> None:
        self._closed = True
        self._bus.close()
        if self._progress_timer is not None:
            self._progress_timer.cancel()
        for futures in self._waiters.values():
            for f in futures:
                if not f.done():
                    f.set_exception(EngineClosed(f"the engine on {self.path} was stopped"))
        self._waiters.clear()
        try:
            if not self._db.memory:
                self._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:
            logger.warning("WAL checkpoint at close failed for %s", self.path, exc_info=True)
        self._db.close()
        if self._lock is not None:
            self._lock.release()

    async def close(self) -> None:
        await self.stop(grace=0)

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed(f"the engine on {self.path} was stopped")

    # -- submitting ---------------------------------------------------------------------

    def _kind_info(self, kind: str) -> KindInfo:
        spec = self._kinds.get(kind)
        if spec is None:
            raise UnknownKind(kind)
        return spec.info

    def _pause_mask(self, group: str | None) -> int:
        mask = PauseReason.GLOBAL if self._settings.paused_all else 0
        if group is not None and group in self._settings.paused_groups:
            mask |= PauseReason.GROUP
        return int(mask)

    async def submit(
        self,
        kind: str,
        payload: JSON = None,
        *,
        priority: int | None = None,
        key: str | None = None,
        on_duplicate: str = "skip",
        run_at: datetime | None = None,
        delay: float | None = None,
        depends_on: Iterable[int] = (),
        on_dependency_failure: str = "cancel",
        parent: int | None = None,
        group: str | None = None,
        tags: Mapping[str, str] | None = None,
        label: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        io: IoBudget | None = None,
        fail_fast: bool = True,
    ) -> SubmitResult:
        """Queue one task. Raises UnknownKind or InvalidSubmission (nothing is written)."""
        self._check_open()
        spec = self._kinds.get(kind) if isinstance(kind, str) else None
        if spec is None and isinstance(kind, str):
            raise UnknownKind(kind)
        row = build_task(
            kind,
            payload,
            info=spec.info if spec else None,
            now=self._now(),
            priority=priority,
            key=key,
            on_duplicate=on_duplicate,
            run_at=run_at,
            delay=delay,
            depends_on=depends_on,
            on_dependency_failure=on_dependency_failure,
            parent=parent,
            group=group,
            tags=tags,
            label=label,
            retry=retry,
            timeout=timeout,
            ttl=ttl,
            io=io,
            fail_fast=fail_fast,
        )
        return (await self._submit_rows([row]))[0]

    async def submit_many(self, submissions: Iterable[Submission]) -> list[SubmitResult]:
        """Queue many tasks in one transaction: all are written or none."""
        subs = list(submissions)
        rows = []
        for i, sub in enumerate(subs):
            if not isinstance(sub, Submission):
                raise InvalidArgument(f"submissions[{i}]: must be a Submission, got {type(sub).__name__}")
            try:
                rows.append(self._new_task(sub))
            except (UnknownKind, ValueError) as e:
                if hasattr(e, "field"):
                    e.args = (f"submissions[{i}].{e}",)
                raise
        return await self._submit_rows(rows, long=len(rows) > 2000)

    def _new_task(self, sub: Submission, *, retry_of: int | None = None) -> NewTask:
        self._check_open()
        info = self._kind_info(sub.kind) if isinstance(sub.kind, str) else None
        return new_task(sub, info=info, now=self._now(), retry_of=retry_of)

    async def _submit_rows(self, rows: list[NewTask], *, long: bool = False) -> list[SubmitResult]:
        db = self._db
        mask_of = self._pause_mask
        fx: SubmitEffects = await db.writer.run(lambda conn: db.sql.submit(conn, rows, mask_of), long=long)
        self._apply_submit_effects(fx)
        return fx.results

    def _apply_submit_effects(self, fx: SubmitEffects) -> None:
        for task_id, t, mask in fx.inserted:
            m = MirrorTask(
                task_id,
                t.kind,
                t.priority,
                float(task_id),
                t.group,
                TaskState.PAUSED if mask else TaskState.PENDING,
                mask,
                t.run_at,
                t.expires_at,
                t.parent_id,
                False,
                t.label,
                1,
            )
            self._tasks[task_id] = m
            if not mask:
                self._make_pending(m)
            if t.expires_at is not None:
                m.ttl_timer = self._timers.call_at(t.expires_at, functools.partial(self._on_ttl, m))
        if fx.changed:
            self._refresh(fx.changed)
        for task_id in fx.interrupt:
            run = self._running.get(task_id)
            if run is not None:
                self._interrupt(run, "supersede")
            else:
                self._refresh([task_id])
        if fx.inserted or fx.changed:
            self._request_tick()

    def _refresh(self, ids: Iterable[int]) -> None:
        """Re-read tasks whose rows changed behind the mirror's back."""
        ids = list(ids)
        rows = self._db.read(lambda c: self._db.sql.load_active(c, ids))
        seen = set()
        for row in rows:
            seen.add(row[0])
            t = self._tasks.get(row[0])
            if t is not None and t.state == TaskState.RUNNING:
                # only the fields a running task may change through a submit
                t.priority = row[2]
                continue
            self._adopt(row)
        for task_id in ids:
            if task_id not in seen and task_id in self._tasks and task_id not in self._running:
                self._forget(self._tasks[task_id])

    # -- the mirror and the ready queue -------------------------------------------------

    def _make_pending(self, t: MirrorTask) -> None:
        t.state = TaskState.PENDING
        if t.timer is not None:
            t.timer.cancel()
            t.timer = None
        if t.run_at is not None and t.run_at > self._now():
            t.timer = self._timers.call_at(t.run_at, lambda: self._on_due(t))
            return
        self._ready.push(t)
        self._idle = False if self._idle else self._idle

    def _on_due(self, t: MirrorTask) -> None:
        t.timer = None
        if t.state == TaskState.PENDING and self._tasks.get(t.id) is t:
            self._ready.push(t)
            self._request_tick()

    def _cancel_timers(self, t: MirrorTask) -> None:
        for name in ("timer", "ttl_timer"):
            h = getattr(t, name)
            if h is not None:
                h.cancel()
                setattr(t, name, None)

    def _forget(self, t: MirrorTask) -> None:
        self._ready.discard(t)
        self._cancel_timers(t)
        self._tasks.pop(t.id, None)

    def _on_ttl(self, t: MirrorTask) -> None:
        t.ttl_timer = None
        if self._tasks.get(t.id) is not t or t.started or t.state == TaskState.RUNNING:
            return
        self._expire(t)

    def _expire(self, t: MirrorTask) -> None:
        now = self._now()
        self._forget(t)
        t.state = TaskState.EXPIRED
        db = self._db
        ttl_age = now - (t.expires_at or now)

        def op(conn: Any) -> bool:
            return db.tr.end_idle(
                conn,
                t.id,
                now,
                state=TaskState.EXPIRED,
                event=EventKind.EXPIRED,
                error="expired before it started (ttl ran out)",
                event_data={"late": round(ttl_age, 3)},
            )

        db.writer.enqueue(op, lambda ok, err: self._after_terminal(t.id))
        self._request_tick()

    # -- dispatch -----------------------------------------------------------------------

    def _request_tick(self) -> None:
        if not self._tick_pending and not self._closed:
            self._tick_pending = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._tick_pending = False
        if self._closed:
            return
        self._dispatch()
        self._flush_buffers()
        self._db.writer.flush()
        self._check_idle()

    def _admit(self, t: MirrorTask) -> bool:
        limit = self._settings.group_limits.get(t.group) if t.group is not None else None
        return limit is None or self._group_running.get(t.group, 0) < limit

    def _dispatch(self) -> None:
        if not self._dispatching or self._held:
            return
        now = self._now()
        while len(self._running) < self._settings.max_concurrency:
            t = self._ready.pop(self._admit)
            if t is None:
                return
            if t.expires_at is not None and not t.started and t.expires_at <= now:
                self._expire(t)
                continue
            self._claim(t, now)

    def _claim(self, t: MirrorTask, now: float) -> None:
        db = self._db
        run = _Run(self, t)
        run.started_at = now
        t.state = TaskState.RUNNING
        t.run = run
        self._running[t.id] = run
        self._group_running[t.group] = self._group_running.get(t.group, 0) + 1
        if t.ttl_timer is not None:
            t.ttl_timer.cancel()
            t.ttl_timer = None
        attempt = t.attempt
        db.writer.enqueue(
            lambda conn: db.tr.claim(conn, t.id, now, attempt),
            lambda row, err: self._claimed(run, row, err),
        )

    def _claimed(self, run: _Run, row: tuple[Any, ...] | None, err: BaseException | None) -> None:
        t = run.task
        if row is None:
            # The row was not pending after all (changed by another process): re-read it.
            if err is not None:
                logger.error("could not start task %s: %s", t.id, err)
            self._release_slot(run)
            run.finished = True
            t.run = None
            self._refresh([t.id])
            self._request_tick()
            return
        payload, checkpoint, options, attempt, max_retries, schedule_id, _crashes = row
        t.started = True
        t.attempt = attempt
        run.payload = None if payload == "null" else json.loads(payload)
        if checkpoint is not None:
            run.checkpoint_text = checkpoint
            run.checkpoint = json.loads(checkpoint)
        run.schedule_id = schedule_id
        spec = self._kinds.get(t.kind)
        run.spec = spec
        if options:
            opts = json.loads(options)
            run.policy = (
                RetryPolicy.from_json(opts["retry"])
                if "retry" in opts
                else spec.info.retry
                if spec
                else RetryPolicy(max_retries=max_retries or 0)
            )
            run.timeout = opts.get("timeout", spec.info.timeout if spec else None)
        elif spec is not None:
            run.policy = spec.info.retry
            run.timeout = spec.info.timeout
        if run.timeout is not None:
            run.timeout_timer = self._timers.call_at(
                run.started_at + run.timeout, lambda: self._on_timeout(run)
            )
        if self._closed or (not self._dispatching and run.interrupt is None):
            run.interrupt = "stop"
        if self._tg is None or self._closed:  # nothing left to run it: it stays pending
            self._commit_decision(run, self._decide(run, _INTERRUPTED, None))
            return
        run.atask = self._tg.create_task(self._execute(run), name=f"task {t.id} {t.kind}")

    def _release_slot(self, run: _Run) -> None:
        t = run.task
        if self._running.pop(t.id, None) is not None:
            n = self._group_running.get(t.group, 1) - 1
            if n:
                self._group_running[t.group] = n
            else:
                self._group_running.pop(t.group, None)

    def _check_idle(self) -> None:
        idle = not self._running and self._ready.count == 0
        if idle and self._idle is False and self._started and not self._closed:
            self._db.writer.enqueue(lambda conn: self._db.sql.emit(conn, EventKind.IDLE, self._now()))
            self._db.writer.flush()
        self._idle = idle

    # -- running ------------------------------------------------------------------------

    async def _execute(self, run: _Run) -> None:
        t = run.task
        spec = run.spec
        outcome, value = _OK, None
        try:
            if spec is None:
                raise Permanent(f"unknown kind {t.kind!r}: no handler is registered in this engine")
            if run.interrupt is not None:
                raise Interrupted(run.interrupt)
            run_in = spec.info.run_in
            if run_in == "loop":
                value = await spec.handler(run.ctx, run.payload)
            elif run_in == "thread":
                value = await self._run_in_thread(run, spec)
            else:
                value = await self._run_in_process(run, spec)
        except asyncio.CancelledError:
            if run.interrupt is None:
                run.interrupt = "stop"  # cancelled from outside: the engine is going away
            outcome = _INTERRUPTED
        except Interrupted as e:
            outcome, value = (_INTERRUPTED, None) if run.interrupt else (_ERROR, e)
        except Permanent as e:
            outcome, value = _PERMANENT, e
        except Exception as e:
            outcome, value = (_INTERRUPTED, None) if run.interrupt else (_ERROR, e)
        if run.finished:
            return  # already recorded (stop gave up waiting for it)
        decision = self._decide(run, outcome, value)
        if decision.cleanup and spec is not None and spec.cleanup is not None:
            await self._run_cleanup(spec, run.ctx, run.payload, decision.cleanup)
        if not run.finished:
            self._commit_decision(run, decision)

    async def _run_cleanup(self, spec: KindSpec, ctx: TaskContext, payload: JSON, reason: str) -> None:
        assert spec.cleanup is not None
        try:
            await self._clock_timeout(self.config.cleanup_timeout, spec.cleanup(ctx, payload, reason))
        except TimeoutError:
            logger.warning("cleanup of task %s timed out after %ss", ctx.id, self.config.cleanup_timeout)
        except Exception:
            logger.exception("cleanup of task %s failed", ctx.id)

    async def _clock_timeout(self, seconds: float, aw: Awaitable[T]) -> T:
        """Await `aw`, cancelling it once `seconds` pass on the engine's clock."""
        task = asyncio.ensure_future(aw)
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            if not task.done():
                timed_out = True
                task.cancel()

        handle = self._timers.call_at(self._now() + seconds, expire)
        try:
            return await task
        except asyncio.CancelledError:
            if timed_out:
                raise TimeoutError(f"timed out after {seconds:g} s") from None
            raise
        finally:
            handle.cancel()

    async def _run_in_thread(self, run: _Run, spec: KindSpec) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="taskdeck-task")
        loop = asyncio.get_running_loop()
        sync_ctx = SyncTaskContext(run.ctx, loop)
        fut = loop.run_in_executor(self._threads, spec.handler, sync_ctx, run.payload)
        # A thread cannot be killed: keep waiting (the slot stays held) even if cancelled.
        while True:
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                if run.interrupt is None or (run.interrupt == "stop" and self._closed):
                    raise
                if fut.done():
                    return fut.result()
                run.interrupt = run.interrupt  # cooperative: the handler sees ctx.interrupted

    async def _run_in_process(self, run: _Run, spec: KindSpec) -> Any:
        if self._procs is None:
            from core.procpool import ProcessPool

            self._procs = ProcessPool(
                self.config.process_workers or os.cpu_count() or 2, self.config.process_start_method
            )
        return await self._procs.run(run, spec.handler)

    def _interrupt(self, run: _Run, reason: str, grace: float | None = None) -> None:
        """Ask a running task to stop (it sees ctx.interrupted); cancel it after a grace."""
        if run.finished:
            return
        # A stronger reason replaces a weaker one (a pause becomes a cancel), never the reverse.
        if (
            run.interrupt is None
            or reason == "stop"
            or (
                reason in ("cancel", "supersede", "timeout")
                and run.interrupt not in ("cancel", "supersede", "timeout")
            )
        ):
            run.interrupt = reason
        if self._procs is not None and run.worker is not None:
            self._procs.interrupt(run)
        grace = self.config.preempt_grace if grace is None else grace
        if grace <= 0:
            self._hard_stop(run)
        elif run.grace_timer is None:
            run.grace_timer = self._timers.call_at(self._now() + grace, lambda: self._hard_stop(run))

    def _hard_stop(self, run: _Run) -> None:
        if run.finished or run.atask is None:
            return
        if run.worker is not None and self._procs is not None:
            self._procs.kill(run)
        run.atask.cancel()

    def _on_timeout(self, run: _Run) -> None:
        run.timeout_timer = None
        if not run.finished:
            run.interrupt = "timeout"
            self._interrupt(run, "timeout", grace=0.0)

    def _decide(self, run: _Run, outcome: int, value: Any) -> _Decision:
        t = run.task
        policy = run.policy
        attempt = t.attempt
        if outcome == _OK:
            try:
                result_json = None if value is None else dumps(value)
            except (TypeError, ValueError) as e:
                outcome, value = _PERMANENT, Permanent(f"the handler's result is not JSON-serialisable: {e}")
            else:
                return _Decision(
                    TaskState.COMPLETED,
                    EventKind.COMPLETED,
                    result_json=result_json,
                    attempt=attempt,
                    progress=1.0,
                )
        if outcome == _INTERRUPTED:
            reason = run.interrupt or "stop"
            if reason == "timeout":
                outcome, value = _ERROR, TimeoutError(f"timed out after {run.timeout:g} s")
            elif reason == "cancel":
                return _Decision(
                    TaskState.CANCELLED,
                    EventKind.CANCELLED,
                    attempt=attempt,
                    error="cancelled while running",
                    cleanup="cancelled",
                )
            elif reason == "supersede":
                return _Decision(
                    TaskState.SUPERSEDED,
                    EventKind.SUPERSEDED,
                    attempt=attempt,
                    error="superseded by a newer submission",
                    cleanup="superseded",
                )
            elif reason == "stop":
                return _Decision(
                    TaskState.PAUSED if t.reasons else TaskState.PENDING,
                    EventKind.INTERRUPTED,
                    mask=t.reasons,
                    attempt=attempt,
                    keep_checkpoint=True,
                    run_at=None,
                )
            else:  # pause or preempt
                if t.reasons:
                    return _Decision(
                        TaskState.PAUSED,
                        EventKind.PAUSED,
                        mask=t.reasons,
                        attempt=attempt,
                        keep_checkpoint=True,
                        data={"reasons": list(PauseReason(t.reasons).names)},
                    )
                return _Decision(TaskState.PENDING, EventKind.RESUMED, attempt=attempt, keep_checkpoint=True)
        message, summary = _format_error(
            value if isinstance(value, BaseException) else RuntimeError(str(value))
        )
        if outcome == _ERROR and attempt <= policy.max_retries:
            delay = policy.delay_for(attempt, self._rng)
            run_at = self._now() + delay
            return _Decision(
                TaskState.PAUSED if t.reasons else TaskState.PENDING,
                EventKind.RETRYING,
                mask=t.reasons,
                error=message,
                traceback=summary,
                run_at=run_at,
                attempt=attempt + 1,
                keep_checkpoint=True,
                data={
                    "error": message,
                    "attempt": attempt + 1,
                    "of": policy.max_retries + 1,
                    "at": run_at,
                    "delay": round(delay, 3),
                },
            )
        return _Decision(
            TaskState.FAILED,
            EventKind.FAILED,
            error=message,
            traceback=summary,
            attempt=attempt,
            data={"error": message},
            cleanup="failed",
        )

    def _commit_decision(self, run: _Run, d: _Decision) -> None:
        t = run.task
        run.finished = True
        for h in (run.grace_timer, run.timeout_timer):
            if h is not None:
                h.cancel()
        now = self._now()
        elapsed = max(0.0, now - run.started_at)
        self._release_slot(run)
        t.run = None
        t.state = d.state
        t.attempt = d.attempt
        t.run_at = d.run_at
        t.reasons = d.mask
        terminal = TaskState(d.state).is_terminal
        db = self._db
        if run.dirty:
            self._flush_progress_rows([run])
        io = tuple(run.io)
        checkpoint = run.checkpoint_text if d.keep_checkpoint else None
        info = self._kinds.get(t.kind)

        def op(conn: Any) -> SubmitEffects | None:
            ok, requeue = db.tr.end_run(
                conn,
                t.id,
                now,
                state=d.state,
                event=d.event,
                event_data=d.data,
                mask=d.mask,
                result_json=d.result_json,
                error=d.error,
                traceback=d.traceback,
                run_at=d.run_at,
                attempt=d.attempt,
                checkpoint_json=checkpoint,
                progress=d.progress,
                run_seconds=elapsed,
                io=io,
            )
            if not (ok and requeue and terminal and d.state != TaskState.CANCELLED):
                return None
            again = json.loads(requeue)
            row = conn.execute(
                "SELECT grp, label, dedup_key, options, tags FROM tasks WHERE id = ?", (t.id,)
            ).fetchone()
            grp, label, key, options, tags = row
            opts = json.loads(options) if options else {}
            new = NewTask(
                kind=t.kind,
                payload_json=dumps(again["payload"]),
                priority=again["priority"],
                group=grp,
                label=label,
                key=key,
                on_duplicate="skip",
                parent_id=t.parent_id,
                schedule_id=run.schedule_id,
                retry_of=None,
                max_retries=(info.info.retry.max_retries if info else DEFAULT_RETRY.max_retries),
                options_json=options,
                tags=json.loads(tags) if tags else None,
                created_at=now,
                run_at=None,
                expires_at=now + opts["ttl"] if "ttl" in opts else None,
            )
            return db.sql.submit(conn, [new], self._pause_mask)

        def after(fx: SubmitEffects | None, err: BaseException | None) -> None:
            if err is not None:
                logger.error("could not record the end of task %s: %s", t.id, err)
            if fx is not None:
                self._apply_submit_effects(fx)
            if terminal:
                self._after_terminal(t.id)

        if terminal:
            self._forget(t)
        elif d.state == TaskState.PENDING:
            self._make_pending(t)
        db.writer.enqueue(op, after)
        self._request_tick()

    def _after_terminal(self, task_id: int) -> None:
        for f in self._waiters.pop(task_id, ()):
            if not f.done():
                f.set_result(None)
        self._terminal_since_prune += 1
        if self._terminal_since_prune >= PRUNE_EVERY and not self._prune_running:
            self._terminal_since_prune = 0
            self._prune_running = True
            assert self._loop is not None
            self._loop.call_soon(self._prune_step)

    # -- progress, logs, checkpoints --------------------------------------------------------

    def _report_progress(
        self, run: _Run, fraction: float | None, message: str | None, done: int | None, total: int | None
    ) -> None:
        if run.finished:
            return
        now = self._now()
        if total is not None:
            run.total = total
        if done is not None:
            run.done = done
            if run.total:
                fraction = min(1.0, done / run.total) if fraction is None else fraction
        if fraction is not None:
            run.progress = fraction
        if message is not None:
            run.message = message[:500]
        self._update_speed(run, now)
        run.dirty = True
        self._bus.publish_progress(
            Event(
                seq=None,
                at=self._clock.now(),
                kind=EventKind.PROGRESS,
                task_id=run.task.id,
                data={
                    "progress": run.progress,
                    "message": run.message,
                    "done": run.done,
                    "total": run.total,
                    "speed": run.speed,
                    "eta": run.eta,
                },
            )
        )
        self._schedule_progress_write()

    def _update_speed(self, run: _Run, now: float) -> None:
        if run.rate_t is None:
            run.rate_t, run.rate_done, run.rate_frac = now, run.done or 0, run.progress or 0.0
            return
        dt = now - run.rate_t
        if dt < SPEED_WINDOW:
            return
        if run.done is not None:
            sample = max(0.0, (run.done - run.rate_done) / dt)
            run.speed = sample if run.speed is None else SPEED_ALPHA * sample + (1 - SPEED_ALPHA) * run.speed
            if run.total is not None and run.speed > 0:
                run.eta = max(0.0, (run.total - run.done) / run.speed)
        elif run.progress is not None:
            rate = max(0.0, (run.progress - run.rate_frac) / dt)
            if rate > 0:
                eta = (1.0 - run.progress) / rate
                run.eta = eta if run.eta is None else SPEED_ALPHA * eta + (1 - SPEED_ALPHA) * run.eta
        run.rate_t, run.rate_done, run.rate_frac = now, run.done or 0, run.progress or 0.0

    def _schedule_progress_write(self) -> None:
        if self._progress_timer is not None or self._loop is None:
            return
        self._progress_timer = self._loop.call_later(PROGRESS_WRITE_INTERVAL, self._progress_due)

    def _progress_due(self) -> None:
        self._progress_timer = None
        self._flush_buffers(force=True)
        self._db.writer.flush()

    def _flush_progress_rows(self, runs: Iterable[_Run]) -> None:
        rows = []
        for r in runs:
            if r.dirty:
                r.dirty = False
                rows.append((r.progress, r.message, r.done, r.total, r.speed, r.eta, r.task.id))
        if rows:
            self._db.writer.enqueue(lambda conn: self._db.tr.write_progress(conn, rows))

    def _flush_buffers(self, force: bool = False) -> None:
        if self._log_buffer:
            rows, self._log_buffer = self._log_buffer, []
            self._db.writer.enqueue(lambda conn: self._db.tr.write_logs(conn, rows))
        loop_time = self._loop.time() if self._loop else 0.0
        if force or loop_time - self._progress_written_at >= PROGRESS_WRITE_INTERVAL:
            dirty = [r for r in self._running.values() if r.dirty]
            if dirty:
                self._progress_written_at = loop_time
                self._flush_progress_rows(dirty)

    def _append_log(self, task_id: int, level: str, message: str) -> None:
        self._log_buffer.append((task_id, self._now(), level, message))
        self._request_tick()

    async def _save_checkpoint(self, run: _Run, data: JSON, text: str) -> None:
        if run.finished:
            raise InvalidState(f"task {run.task.id} is no longer running")
        db = self._db
        task_id = run.task.id
        await db.writer.run(lambda conn: db.tr.save_checkpoint(conn, task_id, text))
        run.checkpoint = data
        run.checkpoint_text = text

    # -- waiting and events -------------------------------------------------------------

    async def wait(self, task_id: int, timeout: float | None = None) -> TaskRecord:
        """Wait until the task is in a terminal state and return its record.

        Raises TaskNotFound, or WaitTimeout after `timeout` seconds (real time)."""
        self._check_open()
        rec = self.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        if rec.is_terminal:
            return rec
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        if task_id not in self._tasks:  # it ended between the read and now
            rec = self.get(task_id)
            if rec is not None and rec.is_terminal:
                return rec
        try:
            if timeout is None:
                await fut
            else:
                await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise WaitTimeout(task_id, timeout or 0) from None
        finally:
            lst = self._waiters.get(task_id)
            if lst and fut in lst:
                lst.remove(fut)
        rec = self.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        return rec

    def events(self, since: int | None = None) -> AsyncIterator[Event]:
        """Events as they happen; `since=seq` replays persisted events after seq first."""
        self._check_open()
        return self._bus.subscribe(since)

    def _read_events_after(self, seq: int, limit: int) -> list[Any]:
        if self._closed:
            return []
        return self._db.read(lambda c: q.raw_events_after(c, seq, limit))

    def _on_committed(self, events: list[Any]) -> None:
        """Writer hook: the (raw) events of one commit, in order."""
        if events[0][0] > self._bus.last_seq + 1:
            self._ingest_external(upto=events[0][0])
        self._bus.publish(events)

    def _ingest_external(self, upto: int | None = None) -> None:
        """Read events other processes committed and bring the mirror up to date."""
        while True:
            events = self._db.read(lambda c: q.raw_events_after(c, self._bus.last_seq, 1000))
            if upto is not None:
                events = [e for e in events if e[0] < upto]
            if not events:
                return
            new_ids = [
                e[3] for e in events if e[2] == "submitted" and e[3] is not None and e[3] not in self._tasks
            ]
            changed = [
                e[3]
                for e in events
                if e[2] in ("priority_changed", "superseded", "requeued")
                and e[3] is not None
                and e[3] in self._tasks
            ]
            if new_ids:
                for row in self._db.read(functools.partial(self._db.sql.load_active, ids=new_ids)):
                    self._adopt(row)
                self._request_tick()
            if changed:
                self._refresh(changed)
            self._bus.publish(events)
            if len(events) < 1000:
                return

    async def _emit(
        self,
        kind: EventKind,
        data: dict[str, Any] | None = None,
        *,
        scope: str | None = None,
        extra: Callable[[Any], None] | None = None,
    ) -> None:
        """Persist a change event (and `extra` writes) in one transaction."""
        db = self._db
        now = self._now()

        def op(conn: Any) -> None:
            if extra is not None:
                extra(conn)
            db.sql.emit(conn, kind, now, None, data, scope=scope)

        await db.writer.run(op)

    async def _watch_clients(self) -> None:
        """Notice commits by other processes (PRAGMA data_version, a few times a second)."""
        conn = self._db.conn
        while True:
            await asyncio.sleep(INBOX_POLL_SECONDS)
            if self._db.writer._busy or self._closed:
                continue
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                continue
            self._data_version = version
            try:
                self._ingest_external()
                await self._apply_inbox()
            except Exception:
                logger.exception("applying changes from other processes failed")

    async def _apply_inbox(self) -> None:
        rows = self._db.read(lambda c: c.execute("SELECT id, op, args FROM inbox ORDER BY id").fetchall())
        if not rows:
            return
        for _, op, args in rows:
            try:
                if op not in INBOX_OPS:
                    raise InvalidArgument(f"unknown request {op!r}")
                kwargs = json.loads(args)
                if op == "interrupt":
                    run = self._running.get(kwargs["id"])
                    if run is not None:
                        self._interrupt(run, kwargs.get("reason", "cancel"))
                    continue
                await getattr(self, op)(**kwargs)
            except Exception as e:
                logger.warning("request %s%s from a client failed: %s", op, args, e)
        last = rows[-1][0]
        await self._db.writer.run(lambda c: c.execute("DELETE FROM inbox WHERE id <= ?", (last,)))

    # -- control ------------------------------------------------------------------------

    def _active(self, task_id: int) -> MirrorTask:
        self._check_open()
        t = self._tasks.get(task_id)
        if t is not None:
            return t
        rec = self._db.read(lambda c: q.get(c, task_id))
        if rec is None:
            raise TaskNotFound(task_id)
        raise InvalidState(f"task {task_id} already ended ({rec.state.value})")

    async def cancel(self, task_id: int) -> None:
        """Cancel a task. A running one sees Interrupted at its next yield point and is
        cancelled after `preempt_grace`; the outcome arrives as a `cancelled` event."""
        t = self._active(task_id)
        if t.run is not None:
            self._interrupt(t.run, "cancel")
            return
        await self._cancel_idle(t, "cancelled by the user")

    async def _cancel_idle(self, t: MirrorTask, error: str) -> None:
        db = self._db
        now = self._now()
        started = t.started
        self._forget(t)
        t.state = TaskState.CANCELLED
        ok = await db.writer.run(
            lambda conn: db.tr.end_idle(
                conn, t.id, now, state=TaskState.CANCELLED, event=EventKind.CANCELLED, error=error
            )
        )
        if not ok:
            self._refresh([t.id])
            raise InvalidState(f"task {t.id} could not be cancelled in its current state")
        self._after_terminal(t.id)
        spec = self._kinds.get(t.kind)
        if started and spec is not None and spec.cleanup is not None:
            run = _Run(self, t)
            row = db.read(
                lambda c: c.execute("SELECT payload, checkpoint FROM tasks WHERE id = ?", (t.id,)).fetchone()
            )
            run.payload = json.loads(row[0])
            run.checkpoint = json.loads(row[1]) if row[1] else None
            run.finished = True
            await self._run_cleanup(spec, run.ctx, run.payload, "cancelled")
        self._request_tick()

    async def _set_reasons(
        self, t: MirrorTask, mask: int, event: EventKind | None, data: dict[str, Any] | None = None
    ) -> None:
        """Change the pause bits of a task that is not running."""
        db = self._db
        now = self._now()
        t.reasons = mask
        if t.state in (TaskState.PENDING, TaskState.PAUSED):
            if mask:
                self._ready.discard(t)
                if t.timer is not None:
                    t.timer.cancel()
                    t.timer = None
                t.state = TaskState.PAUSED
            else:
                self._make_pending(t)
        await db.writer.run(lambda conn: db.tr.set_pause(conn, t.id, now, mask, event=event, event_data=data))
        self._request_tick()

    async def pause(self, task_id: int) -> None:
        """Pause a task; a running one stops at its next yield point keeping its checkpoint."""
        t = self._active(task_id)
        if t.state == TaskState.WAITING:
            raise InvalidState(f"task {task_id} is waiting for its children; pause them instead")
        if t.reasons & PauseReason.USER:
            return
        if t.run is not None:
            t.reasons |= PauseReason.USER
            db = self._db
            db.writer.enqueue(lambda conn: db.tr.set_running_mask(conn, t.id, t.reasons))
            self._interrupt(t.run, "pause")
            return
        await self._set_reasons(t, t.reasons | PauseReason.USER, EventKind.PAUSED, {"reasons": ["user"]})

    async def resume(self, task_id: int) -> None:
        """Resume a task paused by the user (or preempted). Raises InvalidState if it is not."""
        t = self._active(task_id)
        if not t.reasons & _PAUSE_BITS:
            raise InvalidState(f"task {task_id} is not paused ({t.state})")
        mask = t.reasons & ~_PAUSE_BITS
        if t.run is not None:  # asked to pause, not stopped yet: let it go on
            t.reasons = mask
            if t.run.interrupt == "pause" and not mask:
                t.run.interrupt = None
                if t.run.grace_timer is not None:
                    t.run.grace_timer.cancel()
                    t.run.grace_timer = None
            return
        data = {"reasons": list(PauseReason(mask).names)} if mask else None
        await self._set_reasons(t, mask, EventKind.RESUMED, data)

    async def set_priority(self, task_id: int, priority: int) -> None:
        """Change a task's priority (0..255, lower is more urgent)."""
        try:
            priority = check_priority(priority)
        except ValueError as e:
            raise InvalidArgument(str(e)) from e
        t = self._active(task_id)
        if t.priority == priority:
            return
        old = t.priority
        t.priority = priority
        if t.in_ready:
            self._ready.push(t)
        db = self._db
        now = self._now()
        await db.writer.run(lambda conn: db.tr.set_priority(conn, t.id, now, old, priority))
        self._request_tick()

    def _queued(self, exclude: int) -> list[MirrorTask]:
        return sorted(
            (
                t
                for t in self._tasks.values()
                if t.state in (TaskState.PENDING, TaskState.PAUSED) and t.id != exclude
            ),
            key=lambda t: t.order,
        )

    async def move(self, task_id: int, before: int | None = None, *, to: str | None = None) -> None:
        """Reorder the pending set: `before=other_id`, `to="top"` or `to="bottom"`.

        Moving across a priority boundary gives the task its new neighbour's priority;
        `to="top"` never raises a task above Priority.HIGH ("run next")."""
        if (before is None) == (to is None):
            raise InvalidArgument("move: give exactly one of before= or to=")
        if to is not None and to not in ("top", "bottom"):
            raise InvalidArgument(f"to: must be 'top' or 'bottom', got {to!r}")
        t = self._active(task_id)
        if t.state not in (TaskState.PENDING, TaskState.PAUSED):
            raise InvalidState(f"task {task_id} is {t.state}; only queued tasks can be moved")
        queued = self._queued(task_id)
        if before is not None:
            other = self._tasks.get(before)
            if other is None or other.state not in (TaskState.PENDING, TaskState.PAUSED) or before == task_id:
                raise InvalidArgument(f"before: task {before} is not another queued task")
            priority = other.priority
            i = queued.index(other)
            prev = queued[i - 1] if i > 0 and queued[i - 1].priority == priority else None
            position = other.pos - 1.0 if prev is None else (prev.pos + other.pos) / 2
            if prev is not None and not prev.pos < position < other.pos:
                position = await self._renumber(priority, queued, insert_before=other)
        elif to == "top":
            if not queued:
                return
            top = queued[0]
            priority = (
                t.priority
                if t.priority <= top.priority
                else max(top.priority, min(t.priority, Priority.HIGH))
            )
            same = [x for x in queued if x.priority == priority]
            position = (same[0].pos - 1.0) if same else t.pos
        else:
            if not queued:
                return
            last = queued[-1]
            priority = max(last.priority, t.priority) if last.priority >= t.priority else last.priority
            same = [x for x in queued if x.priority == priority]
            position = (same[-1].pos + 1.0) if same else t.pos
        old_priority = t.priority
        t.priority = priority
        t.pos = position
        if t.in_ready:
            self._ready.push(t)
        db = self._db
        now = self._now()
        data: dict[str, Any] = {"before": before, "to": to}
        if priority != old_priority:
            data.update(old_priority=old_priority, new_priority=priority)
        await db.writer.run(
            lambda conn: db.tr.set_priority(conn, t.id, now, old_priority, priority, position, moved=data)
        )
        self._request_tick()

    async def _renumber(self, priority: int, queued: list[MirrorTask], *, insert_before: MirrorTask) -> float:
        """Spread out positions at one priority when bisection ran out of float precision."""
        same = [x for x in queued if x.priority == priority]
        changes = []
        slot = None
        for i, x in enumerate(same):
            if x is insert_before:
                slot = i * 2.0
            x.pos = i * 2.0 + 1.0
            changes.append((x.pos, x.id))
            if x.in_ready:
                self._ready.push(x)
        await self._db.writer.run(
            lambda c: c.executemany("UPDATE tasks SET position = ? WHERE id = ?", changes)
        )
        assert slot is not None
        return slot

    async def retry(self, task_id: int) -> SubmitResult:
        """Submit a failed, cancelled or expired task again, as a new task linked by retry_of."""
        self._check_open()
        rec = self.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        if not rec.is_terminal or rec.state in (TaskState.COMPLETED, TaskState.SKIPPED):
            raise InvalidState(
                f"task {task_id} is {rec.state.value}; only failed, cancelled or expired tasks can be retried"
            )
        sub = resubmission(rec)
        return (await self._submit_rows([self._new_task(sub, retry_of=task_id)]))[0]

    async def retry_failed(self, kind: str | None = None) -> list[int]:
        """Retry every failed task (of `kind`) not already retried; returns the new ids."""
        recs = await self._db.read_async(lambda c: unretried_failures(c, kind))
        out = []
        for rec in recs:
            if rec.kind in self._kinds:
                out.append(
                    (await self._submit_rows([self._new_task(resubmission(rec), retry_of=rec.id)]))[0].id
                )
        return out

    async def cancel_where(
        self,
        *,
        kind: str | None = None,
        group: str | None = None,
        tag: tuple[str, str] | None = None,
        state: str | None = None,
    ) -> list[int]:
        """Cancel every active task matching all the filters; returns their ids."""
        self._check_open()
        states = [state] if state else None
        if state is not None and state not in {s.value for s in TaskState if s.is_active}:
            raise InvalidArgument(f"state: must be an active state, got {state!r}")
        recs = self._db.read(
            lambda c: q.select_tasks(c, active=True, states=states, kind=kind, group=group, tag=tag)
        )
        ids = []
        for rec in recs:
            with contextlib.suppress(InvalidState, TaskNotFound):
                await self.cancel(rec.id)
                ids.append(rec.id)
        return ids

    async def pause_all(self) -> None:
        """Pause every active task (running ones stop at their next yield point)."""
        await self._set_global_pause(True)

    async def resume_all(self) -> None:
        await self._set_global_pause(False)

    async def _set_global_pause(self, paused: bool) -> None:
        self._check_open()
        if self._settings.paused_all == paused:
            return
        self._settings.paused_all = paused
        await self._apply_pause_bit(
            PauseReason.GLOBAL,
            paused,
            lambda t: True,
            EventKind.ALL_PAUSED if paused else EventKind.ALL_RESUMED,
            None,
            lambda conn: settings_put(conn, "paused_all", paused),
        )

    async def _apply_pause_bit(
        self,
        bit: int,
        on: bool,
        match: Callable[[MirrorTask], bool],
        event: EventKind,
        scope: str | None,
        extra: Callable[[Any], None],
    ) -> None:
        changes: list[tuple[int, int]] = []
        for t in list(self._tasks.values()):
            if not match(t) or t.state == TaskState.WAITING:
                continue
            mask = (t.reasons | bit) if on else (t.reasons & ~bit)
            if mask == t.reasons:
                continue
            if t.run is not None:
                t.reasons = mask
                if on:
                    self._interrupt(t.run, "pause")
                continue
            t.reasons = mask
            if t.state in (TaskState.PENDING, TaskState.PAUSED):
                if mask:
                    self._ready.discard(t)
                    if t.timer is not None:
                        t.timer.cancel()
                        t.timer = None
                    t.state = TaskState.PAUSED
                else:
                    self._make_pending(t)
            changes.append((t.id, mask))
        db = self._db

        def op(conn: Any) -> None:
            extra(conn)
            db.tr.set_pause_many(conn, changes)
            db.sql.emit(conn, event, self._now(), None, {"tasks": len(changes)}, scope=scope)

        await db.writer.run(op, long=len(changes) > 5000)
        self._request_tick()

    async def pause_group(self, group: str, until: datetime | float | None = None) -> None:
        """Pause a group's tasks, until resumed or until `until` (aware datetime or seconds)."""
        self._check_open()
        if not isinstance(group, str) or not group:
            raise InvalidArgument(f"group: must be a non-empty string, got {group!r}")
        until_ts: float | None
        if until is None:
            until_ts = None
        elif isinstance(until, datetime):
            if until.tzinfo is None:
                raise InvalidArgument("until: must be timezone-aware")
            until_ts = until.timestamp()
        else:
            try:
                until_ts = self._now() + check_seconds("until", until)
            except ValueError as e:
                raise InvalidArgument(str(e)) from e
        already = group in self._settings.paused_groups
        self._settings.paused_groups[group] = until_ts
        if until_ts is not None:
            self._timers.call_at(until_ts, lambda: self._auto_resume_group(group, until_ts))

        def extra(conn: Any) -> None:
            conn.execute(
                "INSERT INTO groups (name, paused, paused_until) VALUES (?, 1, ?) "
                "ON CONFLICT (name) DO UPDATE SET paused = 1, paused_until = excluded.paused_until",
                (group, until_ts),
            )

        if already:
            await self._emit(EventKind.GROUP_PAUSED, {"until": until_ts}, scope=group, extra=extra)
            return
        await self._apply_pause_bit(
            PauseReason.GROUP, True, lambda t: t.group == group, EventKind.GROUP_PAUSED, group, extra
        )

    def _auto_resume_group(self, group: str, until: float | None = None) -> None:
        if self._closed or group not in self._settings.paused_groups:
            return
        if until is not None and self._settings.paused_groups[group] != until:
            return  # paused again since, with another deadline
        assert self._tg is not None
        self._tg.create_task(self.resume_group(group))

    async def resume_group(self, group: str) -> None:
        self._check_open()
        if group not in self._settings.paused_groups:
            return
        del self._settings.paused_groups[group]

        def extra(conn: Any) -> None:
            conn.execute("UPDATE groups SET paused = 0, paused_until = NULL WHERE name = ?", (group,))

        await self._apply_pause_bit(
            PauseReason.GROUP, False, lambda t: t.group == group, EventKind.GROUP_RESUMED, group, extra
        )

    async def set_max_concurrency(self, n: int) -> None:
        """How many tasks may run at once (1..1024); takes effect at once."""
        self._check_open()
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CONCURRENCY_LIMIT:
            raise InvalidArgument(f"max_concurrency: must be an int in 1..{MAX_CONCURRENCY_LIMIT}, got {n!r}")
        old = self._settings.max_concurrency
        self._settings.max_concurrency = n
        await self._emit(
            EventKind.LIMITS_CHANGED,
            {"max_concurrency": n, "old": old},
            extra=lambda conn: settings_put(conn, "max_concurrency", n),
        )
        self._request_tick()

    async def set_group_limit(self, group: str, n: int | None) -> None:
        """How many tasks of `group` may run at once (None: no limit of its own)."""
        self._check_open()
        if not isinstance(group, str) or not group:
            raise InvalidArgument(f"group: must be a non-empty string, got {group!r}")
        if n is not None and (
            isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CONCURRENCY_LIMIT
        ):
            raise InvalidArgument(f"limit: must be None or an int in 1..{MAX_CONCURRENCY_LIMIT}, got {n!r}")
        if n is None:
            self._settings.group_limits.pop(group, None)
        else:
            self._settings.group_limits[group] = n

        def extra(conn: Any) -> None:
            conn.execute(
                "INSERT INTO groups (name, max_concurrency) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET max_concurrency = excluded.max_concurrency",
                (group, n),
            )

        await self._emit(EventKind.LIMITS_CHANGED, {"group": group, "limit": n}, scope=group, extra=extra)
        self._request_tick()

    def groups(self) -> list[GroupInfo]:
        """Groups with a limit, a pause, or active tasks."""
        self._check_open()
        counts: dict[str, dict[str, int]] = {}
        for t in self._tasks.values():
            if t.group is not None:
                c = counts.setdefault(t.group, {})
                c[t.state] = c.get(t.state, 0) + 1
        s = self._settings
        names = sorted(set(counts) | set(s.group_limits) | set(s.paused_groups))
        return [
            GroupInfo(
                name=n,
                limit=s.group_limits.get(n),
                paused=n in s.paused_groups,
                paused_until=from_ts(s.paused_groups.get(n)),
                counts=counts.get(n, {}),
            )
            for n in names
        ]

    @property
    def max_concurrency(self) -> int:
        return self._settings.max_concurrency

    async def set_retention(self, keep: int | None = DEFAULT_KEEP, days: float | None = DEFAULT_DAYS) -> None:
        """Keep at most `keep` terminal tasks and none older than `days` (None: no bound)."""
        self._check_open()
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
            raise InvalidArgument(f"keep: must be None or an int >= 0, got {keep!r}")
        if days is not None:
            try:
                days = check_seconds("days", days)
            except ValueError as e:
                raise InvalidArgument(str(e)) from e
        self._settings.retention_keep = keep
        self._settings.retention_days = days

        def extra(conn: Any) -> None:
            settings_put(conn, "retention_keep", keep)
            settings_put(conn, "retention_days", days)

        await self._emit(
            EventKind.SETTINGS_CHANGED, {"retention_keep": keep, "retention_days": days}, extra=extra
        )
        self._terminal_since_prune = PRUNE_EVERY
        self._after_terminal(-1)

    async def delete_history(self, ids: Iterable[int]) -> int:
        """Delete terminal tasks (with their events and logs); returns how many went.
        Active tasks and history rows an active task refers to are left alone."""
        self._check_open()
        wanted = [int(i) for i in ids]
        db = self._db
        now = self._now()

        def op(conn: Any) -> int:
            found = q.deletable_history(conn, wanted)
            if found:
                q.delete_tasks(conn, found)
                q.record_pruned(db.sql, conn, now, found, user=True)
            return len(found)

        return await db.writer.run(op, long=len(wanted) > 2000)

    async def prune_history(self, keep: int | None = None, older_than: datetime | float | None = None) -> int:
        """Delete the oldest terminal tasks beyond `keep`, or finished before `older_than`
        (an aware datetime, or an age in seconds). Returns how many were deleted."""
        self._check_open()
        cutoff: float | None = None
        if isinstance(older_than, datetime):
            cutoff = older_than.timestamp()
        elif older_than is not None:
            cutoff = self._now() - check_seconds("older_than", older_than, positive=False)
        total = 0
        while True:
            n = await self._prune_batch(keep, cutoff)
            total += n
            if n < PRUNE_BATCH:
                return total

    async def _prune_batch(self, keep: int | None, cutoff: float | None) -> int:
        db = self._db
        now = self._now()

        def op(conn: Any) -> int:
            ids = q.prune_candidates(conn, keep=keep, older_than=cutoff, limit=PRUNE_BATCH)
            if ids:
                q.delete_tasks(conn, ids)
                q.record_pruned(db.sql, conn, now, ids, user=False)
            return len(ids)

        return await db.writer.run(op)

    def _prune_step(self) -> None:
        """Retention, a small batch at a time, between other work."""
        if self._closed or self._tg is None:
            self._prune_running = False
            return
        s = self._settings
        if s.retention_keep is None and s.retention_days is None:
            self._prune_running = False
            return
        cutoff = self._now() - s.retention_days * 86400 if s.retention_days is not None else None

        async def step() -> None:
            try:
                n = await self._prune_batch(s.retention_keep, cutoff)
            except Exception:
                logger.exception("pruning history failed")
                n = 0
            if n >= PRUNE_BATCH and self._loop is not None and not self._closed:
                # Under load, one batch a second: retention must not slow the queue down.
                self._loop.call_later(PRUNE_PAUSE if self._running else 0.0, self._prune_step)
            else:
                self._prune_running = False

        self._tg.create_task(step())

    # -- queries ------------------------------------------------------------------------

    def get(self, task_id: int) -> TaskRecord | None:
        """A task by id, active or in history."""
        self._check_open()
        rec = self._db.read(lambda c: q.get(c, task_id))
        if rec is None or rec.is_terminal:
            return rec
        return self._with_live_fields(rec)

    def _with_live_fields(self, rec: TaskRecord) -> TaskRecord:
        from dataclasses import replace

        t = self._tasks.get(rec.id)
        if t is None:
            return rec
        changes: dict[str, Any] = {"wait_reason": self._why(t)}
        run = t.run
        if run is not None and not run.finished:
            changes.update(
                progress=run.progress,
                progress_message=run.message,
                bytes_done=run.done,
                bytes_total=run.total,
                speed=run.speed,
                eta=run.eta,
            )
        return replace(rec, **changes)

    def _why(self, t: MirrorTask) -> str | None:
        """Why a task that is not running is not running, in words the window shows."""
        now = self._now()
        if t.state == TaskState.RUNNING:
            return "stopping" if t.run is not None and t.run.interrupt else None
        if t.state == TaskState.PAUSED:
            names = PauseReason(t.reasons).names
            if "user" in names:
                return "paused by you"
            if "preempted" in names:
                return "paused — preempted"
            if "group" in names:
                until = self._settings.paused_groups.get(t.group or "")
                return f"group {t.group} paused" + (f" until {from_ts(until):%H:%M}" if until else "")
            return "all tasks paused"
        if t.state == TaskState.PENDING:
            if t.run_at is not None and t.run_at > now:
                wait = t.run_at - now
                if t.attempt > 1:
                    return f"retrying in {_seconds_text(wait)} (attempt {t.attempt})"
                return f"scheduled in {_seconds_text(wait)}"
            if self._held:
                return "queue held (stop after current)"
            if not self._admit(t):
                return f"group {t.group} at its limit ({self._settings.group_limits.get(t.group or '')})"
            if len(self._running) >= self._settings.max_concurrency:
                return "waiting for a slot"
            return "starting"
        return None

    def tasks(
        self,
        states: Iterable[str] | None = None,
        kind: str | None = None,
        group: str | None = None,
        tag: tuple[str, str] | None = None,
        parent: int | None = None,
        schedule_id: int | None = None,
        search: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Active tasks in dispatch order."""
        self._check_open()
        st = _check_states(states, active=True)
        recs = self._db.read(
            lambda c: q.select_tasks(
                c,
                active=True,
                states=st,
                kind=kind,
                group=group,
                tag=tag,
                parent=parent,
                schedule_id=schedule_id,
                search=search,
                limit=limit,
                offset=offset,
            )
        )
        return [self._with_live_fields(r) for r in recs]

    async def history(
        self,
        states: Iterable[str] | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        schedule_id: int | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Terminal tasks, newest first (read off the loop: history can be long)."""
        self._check_open()
        st = _check_states(states, active=False)
        return await self._db.read_async(
            lambda c: q.select_tasks(
                c,
                active=False,
                states=st,
                kind=kind,
                search=search,
                schedule_id=schedule_id,
                since=since.timestamp() if since else None,
                until=until.timestamp() if until else None,
                limit=limit,
                offset=offset,
            )
        )

    def counts(self) -> dict[str, int]:
        """Tasks by state (all states, zero included)."""
        self._check_open()
        found = self._db.read(q.counts)
        return {s.value: found.get(s.value, 0) for s in TaskState}

    def children(self, task_id: int) -> list[TaskRecord]:
        self._check_open()
        return self._db.read(
            lambda c: q.select_tasks(c, active=True, states=[s.value for s in TaskState], parent=task_id)
        )

    def events_of(self, task_id: int) -> list[Event]:
        """The persisted transition log of one task."""
        self._check_open()
        return self._db.read(lambda c: q.events_of(c, task_id))

    def logs(self, task_id: int, since: int | None = None) -> list[LogLine]:
        """Log lines of a task (after line id `since`)."""
        self._check_open()
        if task_id in self._tasks:
            self._flush_buffers()
            self._db.writer.flush()
        return self._db.read(lambda c: q.logs(c, task_id, since))

    def stats(self, kind: str) -> KindStats:
        self._check_open()
        return self._db.read(lambda c: q.stats(c, kind))

    def snapshot(self) -> Snapshot:
        """Running tasks with progress, counts, limits and why ready tasks wait."""
        self._check_open()
        running = tuple(
            RunningTask(
                id=r.task.id,
                kind=r.task.kind,
                label=r.task.label,
                priority=r.task.priority,
                group=r.task.group,
                started_at=from_ts(r.started_at),  # type: ignore[arg-type]
                progress=r.progress,
                progress_message=r.message,
                bytes_done=r.done,
                bytes_total=r.total,
                speed=r.speed,
                eta=r.eta,
                interrupting=r.interrupt,
            )
            for r in self._running.values()
        )
        counts = {s.value: 0 for s in TaskState if s.is_active}
        for t in self._tasks.values():
            counts[t.state] = counts.get(t.state, 0) + 1
        waiting = {t.id: self._why(t) or "" for t in self._ready}
        return Snapshot(
            running=running,
            counts=counts,
            max_concurrency=self._settings.max_concurrency,
            held=self._held,
            paused_all=self._settings.paused_all,
            groups=tuple(self.groups()),
            waiting=waiting,
        )


def _seconds_text(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _check_states(states: Iterable[str] | None, *, active: bool) -> list[str] | None:
    if states is None:
        return None
    if isinstance(states, str):
        states = [states]
    out = []
    for s in states:
        try:
            out.append(TaskState(s).value)
        except ValueError:
            raise InvalidArgument(f"states: unknown state {s!r}") from None
    return out


def resubmission(rec: TaskRecord) -> Submission:
    """A Submission that runs `rec` again with the same kind, payload and options."""
    return Submission(
        rec.kind,
        rec.payload,
        priority=rec.priority,
        group=rec.group,
        key=rec.key,
        tags=rec.tags or None,
        label=rec.label,
        timeout=rec.timeout,
        ttl=rec.ttl,
    )


def unretried_failures(conn: Any, kind: str | None) -> list[TaskRecord]:
    recs = q.select_tasks(conn, active=False, states=["failed"], kind=kind)
    if not recs:
        return recs
    retried = {r[0] for r in conn.execute("SELECT retry_of FROM tasks WHERE retry_of IS NOT NULL")}
    return [r for r in recs if r.id not in retried]


__all__ = ["Engine", "EngineConfig", "SubmitOutcome", "info_from_json"]
