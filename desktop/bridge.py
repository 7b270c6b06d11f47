"""The one QObject between the engine and the window's models.

It reads `events()`, keeps what changed since the last flush (the latest progress per
task, the ids whose lifecycle changed, moves, deletions) and flushes at most ~30 times a
second on a single-shot QTimer, like qutebrowser's Throttle. A flush reads the changed
records (never the whole queue) and emits one TaskBatch; models apply it row by row.
Changes made by the CLI or another client arrive as events too, so every view follows
them. Widgets never call the engine: they call the async methods here through `spawn`,
which turns a TaskdeckError into a message instead of a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from core import (
    BandwidthStatus,
    Client,
    Clock,
    Engine,
    Event,
    EventKind,
    GroupInfo,
    KindInfo,
    LogLine,
    Priority,
    Schedule,
    SubmitResult,
    SystemClock,
    TaskdeckError,
    TaskRecord,
    TaskState,
)
from core.jobs import presets
from core.jobs.presets import Preset
from desktop.backend import Backend

logger = logging.getLogger(__name__)
T = TypeVar("T")

FLUSH_MS = 33  # at most ~30 refreshes a second, whatever the event rate
MAX_READS_PER_FLUSH = 400  # records read per flush; the rest go to the next one
PARENT_REFRESH_S = 1.0  # a parent's rolled-up progress is re-read at most this often
CLIENT_POLL_S = 1.0  # attached to a worker: progress comes from the rows, once a second
FIRST_PAGE = 150  # enough for the first viewport
PAGE = 1000
MAX_PAGE = 5000  # ~0.2 s of reading on the loop for 5,000 rows
PAGE_OVERLAP = 64  # pages overlap so a task ending meanwhile never shifts one out of sight

_STATUS_EVENTS = frozenset(
    {
        EventKind.LIMITS_CHANGED,
        EventKind.SETTINGS_CHANGED,
        EventKind.HELD,
        EventKind.RELEASED,
        EventKind.ALL_PAUSED,
        EventKind.ALL_RESUMED,
        EventKind.GROUP_PAUSED,
        EventKind.GROUP_RESUMED,
        EventKind.STARTED_ENGINE,
    }
)


@dataclass(frozen=True, slots=True)
class Move:
    task_id: int
    before: int | None
    to: str | None


@dataclass(slots=True)
class TaskBatch:
    """What changed since the last flush."""

    upserts: dict[int, TaskRecord] = field(default_factory=dict)  # fresh records, any state
    progress: dict[int, dict[str, Any]] = field(default_factory=dict)  # progress-only changes
    moves: list[Move] = field(default_factory=list)
    deleted: set[int] = field(default_factory=set)  # history rows deleted or pruned
    history_reload: bool = False  # more rows went than the events list: re-read history

    def __bool__(self) -> bool:
        return bool(self.upserts or self.progress or self.moves or self.deleted or self.history_reload)


@dataclass(frozen=True, slots=True)
class EngineStatus:
    max_concurrency: int
    held: bool
    paused_all: bool
    attached: bool
    holder_pid: int | None
    retention_keep: int | None
    retention_days: float | None


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """One reading of what dispatch weighs besides slots (the resources view and the status
    bar show it). Attached to a worker, only stored settings are known: `live` is False."""

    live: bool
    pressure: float
    pressure_source: str | None
    io: dict[str, dict[str, float]]  # per resource: measured, used, capacity (bytes/s)
    bandwidth: BandwidthStatus | None


class Bridge(QObject):
    """Between the engine (or a Client attached to a worker) and the Qt models.

    Signals:
        batch_ready(TaskBatch): changes since the last flush, at most ~30 per second.
        status_changed(EngineStatus): limits, hold, pause-all or retention changed.
        message(str, str): (level, text) for the user: "info" or "error".
        page_loaded(list[TaskRecord], bool): a page of active tasks in dispatch order at
            start-up; the flag is True on the last page.
        stopped(): the engine stopped (or the client closed).
        idle(): the engine said nothing runs or is ready; emitted after the flush that
            carries the last transitions before it, so views are up to date.
        schedules_changed(set[int]): ids of schedules added, changed, fired or removed
            (or whose runs changed) since the last flush.
    """

    batch_ready = Signal(object)
    status_changed = Signal(object)
    message = Signal(str, str)
    page_loaded = Signal(object, bool)
    stopped = Signal()
    idle = Signal()
    schedules_changed = Signal(object)

    def __init__(
        self,
        backend: Backend,
        *,
        attached: bool = False,
        holder_pid: int | None = None,
        clock: Clock | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.backend = backend
        self.clock: Clock = clock or SystemClock()  # the engine's: countdowns agree with it
        self.attached = attached
        self.holder_pid = holder_pid
        self._reader: Client | None = None  # settings are readable only through a Client
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self._flush)
        self._dirty: dict[int, None] = {}  # ids whose lifecycle changed (ordered set)
        self._progress: dict[int, dict[str, Any]] = {}
        self._moves: list[Move] = []
        self._deleted: set[int] = set()
        self._history_reload = False
        self._status_dirty = False
        self._idle_pending = False
        self._schedules_dirty: set[int] = set()
        self._parents: dict[int, int] = {}  # child id -> parent id, of tasks we have seen
        self._parent_due: dict[int, float] = {}  # parent id -> when to re-read it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inner: dict[asyncio.Task[Any], Coroutine[Any, Any, Any]] = {}
        self._events: AsyncIterator[Event] | None = None
        self._status: EngineStatus | None = None
        self._closed = False
        self.flush_count = 0
        self.events_seen = 0

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow events (from now on), then load the active tasks page by page."""
        if isinstance(self.backend, Engine):
            with contextlib.suppress(TaskdeckError, OSError):
                self._reader = await Client.open(self.backend.path)
        self._events = self.backend.events()
        self._own(self._read_events(), "events")
        if self.attached:
            self._own(self._poll_progress(), "progress poll")
        self._status = self._read_status()
        self.status_changed.emit(self._status)
        self._own(self._load_pages(), "load")

    async def close(self, *, stop_engine: bool = True) -> None:
        """Stop following; stop our engine at once (tasks keep their checkpoints)."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._reader is not None:
            await self._reader.close()
        if isinstance(self.backend, Engine):
            if stop_engine:
                await self.backend.stop(grace=0)
        else:
            await self.backend.close()
        self.stopped.emit()

    @property
    def closed(self) -> bool:
        return self._closed

    def _own(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(f"bridge {name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        inner = self._inner.pop(task, None)
        if inner is not None:
            inner.close()  # cancelled before it started: not a "never awaited" coroutine
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self._closed:
            logger.error("%s failed", task.get_name(), exc_info=exc)
            self.message.emit("error", f"{task.get_name()} failed: {exc}")

    def spawn(self, coro: Awaitable[T], what: str = "") -> asyncio.Task[T | None]:
        """Run a bridge call for a widget; a TaskdeckError becomes a message."""

        async def guarded() -> T | None:
            try:
                return await coro
            except TaskdeckError as e:
                text = f"{what}: {e}" if what else str(e)
                logger.info("refused: %s", text)
                self.message.emit("error", text)
                return None

        task = self._own(guarded(), what or "call")
        if inspect.iscoroutine(coro):
            self._inner[task] = coro
        return task

    # -- reading events -----------------------------------------------------------------

    async def _read_events(self) -> None:
        assert self._events is not None
        n = 0
        async for ev in self._events:
            if self._closed:
                return
            self._on_event(ev)
            n += 1
            if n % 256 == 0:  # the engine's iterator need not suspend: let the loop breathe
                await asyncio.sleep(0)

    def _on_event(self, ev: Event) -> None:
        self.events_seen += 1
        kind = ev.kind
        if kind == EventKind.PROGRESS and ev.task_id is not None:
            self._progress[ev.task_id] = ev.data
            parent = self._parents.get(ev.task_id)
            if parent is not None:
                self._parent_due.setdefault(parent, time.monotonic() + PARENT_REFRESH_S)
        elif kind in (EventKind.DELETED, EventKind.PRUNED):
            ids = ev.data.get("ids") or []
            self._deleted.update(int(i) for i in ids)
            if int(ev.data.get("count", len(ids))) > len(ids):
                self._history_reload = True
        elif ev.task_id is not None:
            self._dirty[ev.task_id] = None
            self._progress.pop(ev.task_id, None)
            if kind == EventKind.MOVED:
                self._moves.append(Move(ev.task_id, ev.data.get("before"), ev.data.get("to")))
            parent = self._parents.get(ev.task_id)
            if parent is not None:
                self._dirty[parent] = None
        if kind == EventKind.IDLE:
            self._idle_pending = True
        if kind in _STATUS_EVENTS or (kind == EventKind.SETTINGS_CHANGED):
            self._status_dirty = True
        if ev.schedule_id is not None:
            self._schedules_dirty.add(ev.schedule_id)
        if not self._timer.isActive():
            self._timer.start()

    async def _poll_progress(self) -> None:
        """Attached to a worker, events carry no progress: read the running rows."""
        while not self._closed:
            await asyncio.sleep(CLIENT_POLL_S)
            try:
                running = self.backend.tasks(states=[TaskState.RUNNING.value, TaskState.WAITING.value])
            except TaskdeckError:
                continue
            for rec in running:
                self._progress[rec.id] = {
                    "progress": rec.progress,
                    "message": rec.progress_message,
                    "done": rec.bytes_done,
                    "total": rec.bytes_total,
                    "speed": rec.speed,
                    "eta": rec.eta,
                }
            if running and not self._timer.isActive():
                self._timer.start()

    def _flush(self) -> None:
        if self._closed:
            return
        self.flush_count += 1
        batch = TaskBatch(progress=self._progress, moves=self._moves, deleted=self._deleted)
        self._progress, self._moves, self._deleted = {}, [], set()
        batch.history_reload, self._history_reload = self._history_reload, False
        now = time.monotonic()
        for parent, due in list(self._parent_due.items()):
            if due <= now:
                del self._parent_due[parent]
                self._dirty[parent] = None
        ids = list(self._dirty)[:MAX_READS_PER_FLUSH]
        for task_id in ids:
            del self._dirty[task_id]
            try:
                rec = self.backend.get(task_id)
            except TaskdeckError:
                continue
            if rec is None:
                continue
            batch.upserts[task_id] = rec
            batch.progress.pop(task_id, None)
            if rec.parent_id is not None:
                self._parents[task_id] = rec.parent_id
            if rec.is_terminal:
                self._parents.pop(task_id, None)
        if batch:
            self.batch_ready.emit(batch)
        for rec in batch.upserts.values():
            if rec.schedule_id is not None:  # a run started or ended: its schedule's last result
                self._schedules_dirty.add(rec.schedule_id)
        if self._schedules_dirty:
            changed, self._schedules_dirty = self._schedules_dirty, set()
            self.schedules_changed.emit(changed)
        if self._status_dirty:
            self._status_dirty = False
            self._status = self._read_status()
            self.status_changed.emit(self._status)
        if self._idle_pending and not self._dirty:  # after the records it follows
            self._idle_pending = False
            self.idle.emit()
        if (self._dirty or self._parent_due) and not self._timer.isActive():
            self._timer.start()

    def flush_now(self) -> None:
        """Apply what is pending at once (tests and the benchmark use it)."""
        self._timer.stop()
        self._flush()

    # -- start-up -----------------------------------------------------------------------

    async def _load_pages(self) -> None:
        seen: set[int] = set()
        offset, size = 0, FIRST_PAGE
        while not self._closed:
            start = max(0, offset - PAGE_OVERLAP) if offset else 0
            page = self.backend.tasks(limit=size, offset=start)
            fresh = [r for r in page if r.id not in seen]
            seen.update(r.id for r in fresh)
            for r in fresh:
                if r.parent_id is not None:
                    self._parents[r.id] = r.parent_id
            last = len(page) < size
            self.page_loaded.emit(fresh, last)
            if last:
                return
            offset = start + len(page)
            # pages grow: OFFSET costs grow with the offset, so fewer, larger pages later
            size = min(MAX_PAGE, PAGE if size == FIRST_PAGE else size * 2)
            await asyncio.sleep(0)

    # -- engine status --------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        source = self._reader if self._reader is not None else self.backend
        if isinstance(source, Client):
            try:
                return source.settings()
            except TaskdeckError:
                return {}
        return {}

    def _read_status(self) -> EngineStatus:
        s = self._settings()
        engine_info = s.get("engine") or {}
        if isinstance(self.backend, Engine):
            mc = self.backend.max_concurrency
            held = self.backend.is_held
        else:
            mc = int(s.get("max_concurrency", engine_info.get("max_concurrency", 4)))
            held = bool(engine_info.get("held", False))
        return EngineStatus(
            max_concurrency=mc,
            held=held,
            paused_all=bool(s.get("paused_all", False)),
            attached=self.attached,
            holder_pid=self.holder_pid,
            retention_keep=s.get("retention_keep", 10_000),
            retention_days=s.get("retention_days", 90.0),
        )

    def resource_sample(self) -> ResourceSample:
        """Pressure, IO and the bandwidth limit now (cheap: no per-task work)."""
        backend = self.backend
        try:
            bandwidth: BandwidthStatus | None = backend.bandwidth()
        except TaskdeckError:
            bandwidth = None
        if isinstance(backend, Engine):
            pressure, source = backend.pressure
            return ResourceSample(True, pressure, source, backend.io_status(), bandwidth)
        try:
            caps = backend.io_capacity()
        except TaskdeckError:
            caps = {}
        io = {r: {"measured": 0.0, "used": 0.0, "capacity": float(c)} for r, c in caps.items()}
        return ResourceSample(False, 0.0, None, io, bandwidth)

    def refresh_reasons(self, known: dict[int, str | None]) -> dict[int, TaskRecord]:
        """Re-read tasks whose wait reason may have changed without an event (a gate
        refused or admitted them); returns those whose reason did change."""
        changed: dict[int, TaskRecord] = {}
        for task_id, reason in known.items():
            try:
                rec = self.backend.get(task_id)
            except TaskdeckError:
                continue
            if rec is not None and rec.wait_reason != reason:
                changed[task_id] = rec
        return changed

    def apply_records(self, records: dict[int, TaskRecord]) -> None:
        """Hand re-read records to the models as one batch."""
        if records and not self._closed:
            self.batch_ready.emit(TaskBatch(upserts=records))

    async def set_bandwidth_limit(self, bps: float | None, until: datetime | None = None) -> None:
        await self.backend.set_bandwidth_limit(bps, until=until)

    @property
    def status(self) -> EngineStatus:
        if self._status is None:
            self._status = self._read_status()
        return self._status

    # -- queries ------------------------------------------------------------------------

    def get(self, task_id: int) -> TaskRecord | None:
        return self.backend.get(task_id)

    def task_children(self, task_id: int) -> list[TaskRecord]:
        return self.backend.children(task_id)

    def logs(self, task_id: int, since: int | None = None) -> list[LogLine]:
        return self.backend.logs(task_id, since)

    def events_of(self, task_id: int) -> list[Event]:
        return self.backend.events_of(task_id)

    def dependencies(self, task_id: int) -> list[int]:
        return self.backend.dependencies(task_id)

    def kinds(self) -> list[KindInfo]:
        return self.backend.kinds()

    def groups(self) -> list[GroupInfo]:
        return self.backend.groups()

    def counts(self) -> dict[str, int]:
        return self.backend.counts()

    async def history(
        self,
        *,
        states: Sequence[str] | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        search: str | None = None,
        limit: int | None = 200,
        offset: int = 0,
    ) -> list[TaskRecord]:
        return await self.backend.history(
            states=states or None, kind=kind, since=since, search=search or None, limit=limit, offset=offset
        )

    # -- app settings (presets, saved targets) ---------------------------------------------

    def get_setting(self, name: str, default: Any = None) -> Any:
        return self.backend.get_setting(name, default)

    async def set_setting(self, name: str, value: Any) -> None:
        await self.backend.set_setting(name, value)

    async def presets(self, kind: str) -> list[Preset]:
        return await presets.list_presets(self.backend, kind)

    async def save_preset(self, kind: str, name: str, options: dict[str, Any]) -> Preset:
        return await presets.save_preset(self.backend, kind, name, options)

    async def delete_preset(self, kind: str, name: str) -> None:
        await presets.delete_preset(self.backend, kind, name)

    # -- control --------------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        payload: Any = None,
        *,
        priority: int | None = None,
        label: str | None = None,
        group: str | None = None,
        key: str | None = None,
    ) -> SubmitResult:
        return await self.backend.submit(kind, payload, priority=priority, label=label, group=group, key=key)

    async def pause(self, ids: Iterable[int]) -> None:
        for i in ids:
            await self.backend.pause(i)

    async def resume(self, ids: Iterable[int]) -> None:
        for i in ids:
            await self.backend.resume(i)

    async def cancel(self, ids: Iterable[int]) -> None:
        for i in ids:
            await self.backend.cancel(i)

    async def set_priority(self, ids: Iterable[int], priority: int) -> None:
        for i in ids:
            await self.backend.set_priority(i, priority)

    async def move(self, task_id: int, *, before: int | None = None, to: str | None = None) -> None:
        await self.backend.move(task_id, before, to=to)

    async def run_next(self, ids: Sequence[int]) -> None:
        """Move to the top of the pending set (the first id ends up first)."""
        for i in reversed(ids):
            await self.backend.move(i, to="top")

    async def retry(self, ids: Iterable[int]) -> list[SubmitResult]:
        return [await self.backend.retry(i) for i in ids]

    async def retry_failed(self) -> list[int]:
        return await self.backend.retry_failed()

    async def pause_all(self, on: bool) -> None:
        await (self.backend.pause_all() if on else self.backend.resume_all())

    async def hold(self, on: bool) -> None:
        await (self.backend.hold() if on else self.backend.release())

    async def set_max_concurrency(self, n: int) -> None:
        await self.backend.set_max_concurrency(n)

    async def set_group_limit(self, group: str, n: int | None) -> None:
        await self.backend.set_group_limit(group, n)

    async def set_retention(self, keep: int | None, days: float | None) -> None:
        await self.backend.set_retention(keep=keep, days=days)

    async def delete_history(self, ids: Iterable[int]) -> int:
        return await self.backend.delete_history(list(ids))

    async def history_ids(
        self,
        *,
        states: Sequence[str] | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        search: str | None = None,
    ) -> list[int]:
        recs = await self.history(states=states, kind=kind, since=since, search=search, limit=None)
        return [r.id for r in recs]

    # -- schedules ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The engine's time (a test's fake clock, else the wall clock)."""
        return self.clock.now()

    def schedules(self) -> list[Schedule]:
        return self.backend.schedules.list()

    def schedule(self, schedule_id: int) -> Schedule | None:
        return self.backend.schedules.get(schedule_id)

    async def add_schedule(self, kind: str, payload: Any, **options: Any) -> int:
        return await self.backend.schedules.add(kind, payload, **options)

    async def update_schedule(self, schedule_id: int, **changes: Any) -> Schedule:
        return await self.backend.schedules.update(schedule_id, **changes)

    async def set_schedule_paused(self, schedule_id: int, paused: bool) -> None:
        if paused:
            await self.backend.schedules.pause(schedule_id)
        else:
            await self.backend.schedules.resume(schedule_id)

    async def remove_schedule(self, schedule_id: int) -> None:
        await self.backend.schedules.remove(schedule_id)

    async def run_schedule_now(self, schedule_id: int) -> SubmitResult:
        return await self.backend.schedules.run_now(schedule_id)

    def active_schedule_runs(self, schedule_ids: Iterable[int]) -> list[TaskRecord]:
        """The active tasks these schedules started (one query per schedule, not a read of
        the whole queue)."""
        return [r for sid in schedule_ids for r in self.backend.tasks(schedule_id=sid)]

    async def schedule_runs(self, schedule_id: int, limit: int = 200) -> list[TaskRecord]:
        """A schedule's runs, the active ones first, then history newest first."""
        active = self.backend.tasks(schedule_id=schedule_id)
        done = await self.backend.history(schedule_id=schedule_id, limit=limit)
        return [*active, *done]

    def bandwidth(self) -> BandwidthStatus:
        return self.backend.bandwidth()

    async def set_bandwidth_schedule(self, windows: Sequence[Any], tz: str | None = None) -> None:
        await self.backend.set_bandwidth_schedule(windows, tz=tz)


PRIORITY_LEVELS = tuple(int(p) for p in Priority)
