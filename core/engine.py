"""The engine: owns the database, dispatches tasks by priority and runs their handlers."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import math
import operator
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from core.clock import from_ts
from core.config import (
    _INTERRUPTED,
    CRASH_LIMIT,
    EngineConfig,
)
from core.control import resubmission, unretried_failures
from core.dispatch import MirrorTask
from core.errors import (
    EngineClosed,
    InvalidArgument,
    InvalidDependency,
    InvalidState,
    InvalidSubmission,
    TaskNotFound,
    UnknownKind,
    WaitTimeout,
)
from core.eventbus import EventBus
from core.lock import EngineLock
from core.registry import Handler, KindSpec, checked_payload, info_to_json, make_spec, submit_defaults
from core.schedule_engine import ScheduleEngine
from core.store import queries as q
from core.store import schedules as store_schedules
from core.store.db import MEMORY, connect, migrate
from core.store.tasks import NewTask, TaskRun, dumps
from core.store.transitions import app_setting_get, app_setting_put, settings_get, settings_put
from core.types import (
    JSON,
    Event,
    EventKind,
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
    SubmitResult,
    TaskRecord,
    TaskState,
)
from core.validation import (
    build_task,
    check_schema,
    check_seconds,
    check_setting,
    check_states,
    encode_payload,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


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


class Engine(ScheduleEngine):
    """A durable priority task queue on SQLite. Open with `await Engine.open(path)`."""

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

    async def _recover(self) -> None:
        db = self._db
        now = self._now()
        self._bus = EventBus(self._read_events_after, db.read(q.last_event_seq))

        def recover(conn: Any) -> dict[str, int]:
            return db.tr.recover_running(conn, now, CRASH_LIMIT)

        counts = await db.writer.run(recover, long=True)  # off the loop: may touch many rows
        settings = db.read(settings_get)
        s = self._settings
        s.max_concurrency = int(settings.get("max_concurrency", s.max_concurrency))
        s.retention_keep = settings.get("retention_keep", s.retention_keep)
        s.retention_days = settings.get("retention_days", s.retention_days)
        s.paused_all = bool(settings.get("paused_all", False))
        self._load_gates(settings)
        for name, limit, paused, until in db.read(
            lambda c: c.execute("SELECT name, max_concurrency, paused, paused_until FROM groups").fetchall()
        ):
            if limit is not None:
                s.group_limits[name] = limit
            if paused:
                s.paused_groups[name] = until
        self._data_version = db.conn.execute("PRAGMA data_version").fetchone()[0]
        adopted = [self._adopt(row) for row in await db.read_async(db.sql.load_active)]
        # Trees and graphs: waiting parents whose children all ended are queued to finalize,
        # blocked tasks are checked against how their dependencies ended.
        counts["finalized"] = self._link_adopted(adopted)
        self._load_schedules(await db.read_async(store_schedules.load))
        self.last_recovery = Recovery(**counts)
        if self.last_recovery.total:
            logger.info("recovered %s: %s", self.path, counts)
            await self._emit(EventKind.RECOVERED, dict(counts))

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
        validate: Callable[[Any], Any] | None = None,
        defaults: Callable[[Any], Mapping[str, Any]] | None = None,
        fail_fast: bool = True,
    ) -> None:
        """Register `handler` for `kind` with the defaults its tasks get.

        `handler(ctx, payload)` is async for run_in="loop", a plain function for "thread"
        and "process" (a process handler must be importable: a module-level function).
        `cleanup(ctx, payload, reason)` runs when a task is cancelled or fails for good.
        `validate(payload)` runs at submit after the schema check, for what a schema cannot
        say (a path exists...): it raises InvalidSubmission naming the field, or returns
        the payload to store (normalised). `defaults(payload)` gives the `group`, `key` and
        `label` a task gets when its submitter gives none. `fail_fast` is the default for
        its tasks."""
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
            validate=validate,
            defaults=defaults,
            fail_fast=fail_fast,
        )
        self._kinds[kind] = spec
        self._publish_kinds([spec])  # clients validate against it from now on
        if self._started:
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

    def _publish_kinds(self, specs: Iterable[KindSpec]) -> None:
        rows = [(s.info.kind, dumps(info_to_json(s.info))) for s in specs]

        def write(conn: Any) -> None:
            conn.executemany(
                "INSERT INTO kinds (name, info) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET info = excluded.info",
                rows,
            )

        self._db.writer.enqueue(write)
        self._db.writer.flush()

    async def start(self) -> None:
        """Start dispatching, the timers and the watch for clients' requests."""
        self._check_open()
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._main = asyncio.create_task(self._serve(ready), name=f"taskdeck engine {self.path}")
        await ready
        self._dispatching = True  # only now: claimed tasks need the task group to run in
        await self._emit(
            EventKind.STARTED_ENGINE,
            self._runtime_info(),
            extra=lambda conn: settings_put(conn, "engine", self._runtime_info()),
        )
        self._arm_all()
        for name, until in list(self._settings.paused_groups.items()):
            if until is not None:
                self._timers.call_at(until, functools.partial(self._auto_resume_group, name, until))
        self._request_tick()

    def _runtime_info(self) -> dict[str, Any]:
        """What clients show about the running engine (kept in settings as "engine")."""
        return {"pid": os.getpid(), "max_concurrency": self._settings.max_concurrency, "held": self._held}

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        assert self._stop_event is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            timers = tg.create_task(self._timers.run(), name="taskdeck timers")
            watcher = tg.create_task(self._watch_clients(), name="taskdeck client watch")
            self._bw_refresh()
            sampler = tg.create_task(self._sample_forever(), name="taskdeck resource sampler")
            deferred, self._deferred_cleanups = self._deferred_cleanups, []
            for cleanup in deferred:
                tg.create_task(cleanup())
            ready.set_result(None)
            await self._stop_event.wait()
            timers.cancel()
            watcher.cancel()
            sampler.cancel()

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
        info = self._runtime_info()
        await self._emit(
            EventKind.HELD if held else EventKind.RELEASED,
            extra=lambda conn: settings_put(conn, "engine", info),
        )
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
        fail_fast: bool | None = None,
    ) -> SubmitResult:
        """Queue one task. Raises UnknownKind or InvalidSubmission (nothing is written)."""
        self._check_open()
        spec = self._kinds.get(kind) if isinstance(kind, str) else None
        if spec is None and isinstance(kind, str):
            raise UnknownKind(kind)
        if parent is not None and (p := self._tasks.get(parent)) is not None:
            # children inherit their parent's priority and group unless given their own
            priority = p.priority if priority is None else priority
            group = p.group if group is None else group
        if spec is not None and spec.validate is not None:
            payload = checked_payload(spec, payload)
        if spec is not None and spec.defaults is not None:
            d = submit_defaults(spec, payload)
            group = d.get("group") if group is None else group
            key = d.get("key") if key is None else key
            label = d.get("label") if label is None else label
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

    async def submit_graph(self, graph: Mapping[str, Submission]) -> dict[str, int]:
        """Submit named tasks whose `depends_on` may name each other (or give ids), in one
        transaction; returns name -> task id. A name that is not in the graph, or a cycle,
        raises InvalidDependency before anything is written."""
        self._check_open()
        order = graph_order(graph)
        rows: list[NewTask] = []
        index: dict[str, int] = {}
        for name in order:
            sub = graph[name]
            ids = tuple(d for d in sub.depends_on if not isinstance(d, str))
            try:
                row = self._new_task(dataclasses.replace(sub, depends_on=ids))
            except InvalidSubmission as e:
                raise InvalidSubmission(f"{name}.{e.field}", e.problem) from None
            # Dependencies on other nodes point back into this batch (-1: its first row).
            row.depends_on = ids + tuple(-(index[d] + 1) for d in sub.depends_on if isinstance(d, str))
            index[name] = len(rows)
            rows.append(row)
        results = await self._submit_rows(rows, long=len(rows) > 2000)
        return {name: results[index[name]].id for name in graph}

    def dependencies(self, task_id: int) -> list[int]:
        """Ids the task declared it depends on (kept after either ends)."""
        self._check_open()
        return self._db.read(lambda c: q.dependencies(c, task_id))

    def dependents(self, task_id: int) -> list[int]:
        """Ids of tasks that declared they depend on this one."""
        self._check_open()
        return self._db.read(lambda c: q.dependents(c, task_id))

    async def submit_many(self, submissions: Iterable[Submission]) -> list[SubmitResult]:
        """Queue many tasks in one transaction: all are written or none."""
        subs = list(submissions)
        rows: list[NewTask | TaskRun] = []
        run: TaskRun | None = None  # the open run of submissions alike but for their payloads
        run_options: tuple[Any, ...] = ()
        schema: Mapping[str, Any] | None = None
        for i, sub in enumerate(subs):
            if not isinstance(sub, Submission):
                raise InvalidArgument(f"submissions[{i}]: must be a Submission, got {type(sub).__name__}")
            try:
                if run is not None and _alike(sub, run_options):
                    payload_json = encode_payload(sub.payload)
                    if schema:
                        check_schema(sub.kind, schema, json.loads(payload_json))
                    run.payloads.append(payload_json)
                    continue
                row = self._new_task(sub)
            except (UnknownKind, ValueError) as e:
                if hasattr(e, "field"):
                    e.args = (f"submissions[{i}].{e}",)
                raise
            spec = self._kinds.get(row.kind)
            if spec is not None and spec.validate is None and spec.defaults is None and _runnable(row):
                run = TaskRun(row, [row.payload_json])
                run_options, schema = _options_of(sub), spec.info.schema
                rows.append(run)
            else:
                run = None
                rows.append(row)
        return await self._submit_rows(rows, long=len(subs) > 2000)

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
        changes: dict[str, Any] = {
            "wait_reason": self._why(t),
            "effective_priority": t.eff,
            "preempted_by": self._preempted_by.get(t.id),
        }
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
        if t.spawned and (run is None or run.progress is None):
            changes.update(self._tree_progress(t))
        return replace(rec, **changes)

    def _tree_progress(self, t: MirrorTask) -> dict[str, Any]:
        """A parent's progress from its children's: by bytes when they report bytes, else by
        count; speed is what its running children move, together."""
        count, ended, done, total, fractions = self._db.read(lambda c: q.tree_progress(c, t.id))
        if not count:
            return {}
        speed = sum(r.speed or 0.0 for k in self._kids.get(t.id, ()) if (r := self._running.get(k))) or None
        out: dict[str, Any] = {"speed": speed, "eta": None}
        if total:
            out.update(progress=min(1.0, done / total), bytes_done=done, bytes_total=total)
            if speed:
                out["eta"] = max(0.0, (total - done) / speed)
        else:
            out["progress"] = min(1.0, fractions / count)
        out["progress_message"] = (
            f"part {ended + 1} of {count}" if ended < count else f"all {count} parts done"
        )
        return out

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
                by = self._preempted_by.get(t.id)
                return "preempted" + (f" by #{by}" if by is not None else "") + " — resumes when a slot frees"
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
            if t.in_ready and self._admit(t) is not None:
                return self._refusals.get(t.lane, "waiting for a slot")
            if len(self._running) >= self._settings.max_concurrency:
                return "waiting for a slot"
            return "starting"
        if t.state == TaskState.BLOCKED:
            waiting_on = sorted(d for d, dependents in self._dependents.items() if t.id in dependents)
            shown = ", ".join(f"#{d}" for d in waiting_on[:3]) + (" …" if len(waiting_on) > 3 else "")
            return f"blocked — waiting for {shown}" if waiting_on else "blocked"
        if t.state == TaskState.WAITING:
            return f"waiting for {t.children} part{'s' if t.children != 1 else ''}"
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
        st = check_states(states)
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
        st = check_states(states)
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

    def get_setting(self, name: str, default: Any = None) -> Any:
        """A setting the app keeps in the database (presets, saved targets...): shared by
        the window, the CLI and every Client; engine settings are not reachable this way."""
        self._check_open()
        key, _ = check_setting(name)
        value = self._db.read(lambda c: app_setting_get(c, key))
        return default if value is None else value

    async def set_setting(self, name: str, value: Any) -> None:
        """Store an app setting (JSON; None deletes it); a settings_changed event says so."""
        self._check_open()
        key, text = check_setting(name, value)
        await self._emit(EventKind.SETTINGS_CHANGED, {"setting": name},
                         extra=lambda conn: app_setting_put(conn, key, text))  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """Engine settings as stored (concurrency, retention, limits, bandwidth...), the
        same view a Client has."""
        self._check_open()
        return self._db.read(settings_get)

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
        waiting = {t.id: self._why(t) or "" for t in self._ready if t.state == TaskState.PENDING}
        return Snapshot(
            running=running,
            counts=counts,
            max_concurrency=self._settings.max_concurrency,
            held=self._held,
            paused_all=self._settings.paused_all,
            groups=tuple(self.groups()),
            waiting=waiting,
            pressure=self._pressure,
            pressure_source=self._pressure_source,
            preempted=dict(self._preempted_by),
            rate_limits=self.rate_limits(),
            io=self.io_status(),
            bandwidth=self.bandwidth(),
            group_shares=self.group_shares(),
        )


def graph_order(graph: Mapping[str, Submission]) -> list[str]:
    """The names of a graph, each after the names it depends on; raises InvalidDependency
    for a dependency outside the graph or a cycle (naming it)."""
    deps: dict[str, list[str]] = {}
    for name, sub in graph.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"graph: names must be non-empty strings, got {name!r}")
        if not isinstance(sub, Submission):
            raise InvalidArgument(f"graph[{name!r}]: must be a Submission, got {type(sub).__name__}")
        named = [d for d in sub.depends_on if isinstance(d, str)]
        for d in named:
            if d not in graph:
                raise InvalidDependency(f"{name}: depends on {d!r}, which is not in the graph")
        deps[name] = named
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise InvalidDependency(f"dependency cycle: {' -> '.join(cycle)} (each depends on the next)")
        state[name] = 1
        for d in deps[name]:
            visit(d, [*path, name])
        state[name] = 2
        order.append(name)

    for name in graph:
        visit(name, [])
    return order


def _seconds_text(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


__all__ = ["Engine", "EngineConfig", "resubmission", "unretried_failures"]


# submit_many's runs: consecutive submissions equal in every field but the payload share
# one validated template (each payload is still encoded, size-checked and schema-checked).
_options_of = operator.attrgetter(*(f.name for f in dataclasses.fields(Submission) if f.name != "payload"))


def _alike(sub: Submission, run_options: tuple[Any, ...]) -> bool:
    """Whether `sub` has exactly the run's options: the same objects (the common case), or
    values that validate and store the same. Equal is not enough: True == 1 but only one
    is a valid priority, {"a": 1, "b": 2} == {"b": 2, "a": 1} but the tags column keeps
    the order, and two datetimes of the repeated hour of a DST change that differ only
    by `fold` are equal but an hour apart."""
    options = _options_of(sub)
    if options != run_options:
        return False
    if all(map(operator.is_, options, run_options)):
        return True
    pairs = zip(options, run_options, strict=True)
    return all(a is b or _stored_form(a) == _stored_form(b) for a, b in pairs)


def _stored_form(value: Any) -> Any:
    """A value with what decides how it validates and is stored: types, order, instants."""
    if isinstance(value, datetime):
        return (datetime, value.timestamp() if value.tzinfo is not None else value)
    if isinstance(value, float):
        return (float, repr(value))  # 0.0 and -0.0 encode differently
    if isinstance(value, Mapping):
        return (type(value), tuple((_stored_form(k), _stored_form(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(map(_stored_form, value)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value), tuple(_stored_form(getattr(value, f.name)) for f in dataclasses.fields(value)))
    return (type(value), value)


def _runnable(row: NewTask) -> bool:
    """Whether a validated row can head a run: dedup keys, dependencies and parents need
    their own statements."""
    return (
        row.key is None
        and not row.depends_on
        and row.parent_id is None
        and row.schedule_id is None
        and row.retry_of is None
        and row.requeue_json is None
    )
