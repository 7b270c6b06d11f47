"""Client: the engine's API for other processes (the CLI, scripts, a window attached to a
headless worker). Submissions are short inserts; control requests go into an inbox that
the running engine applies; queries read the database directly."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
from collections.abc import AsyncGenerator, Generator, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from core.bandwidth import BandwidthPolicy, BandwidthWindow, check_bps
from core.control import resubmission, unretried_failures
from core.engine import graph_order
from core.errors import (
    CorruptDatabase,
    EngineClosed,
    InvalidArgument,
    InvalidState,
    InvalidSubmission,
    ScheduleNotFound,
    TaskNotFound,
    WaitTimeout,
)
from core.lock import EngineLock
from core.registry import info_from_json
from core.schedules import Schedule, Schedules, ScheduleSpec, build_schedule, spec_with, task_for, to_record
from core.store import queries as q
from core.store import schedules as store_schedules
from core.store.database import Database
from core.store.db import MEMORY, SCHEMA_VERSION, connect, schema_version
from core.store.tasks import NewTask, dumps
from core.store.transitions import app_setting_get, app_setting_put, pause_mask_from_db, settings_get
from core.types import (
    JSON,
    BandwidthStatus,
    Event,
    EventKind,
    GroupInfo,
    IoBudget,
    KindInfo,
    KindStats,
    LogLine,
    RetryPolicy,
    RunningTask,
    Snapshot,
    Submission,
    SubmitResult,
    TaskRecord,
    TaskState,
)
from core.validation import (
    check_group_name,
    check_io_capacity,
    check_min_slots,
    check_priority,
    check_rate_limit,
    check_setting,
    check_states,
    check_weight,
    new_task,
)

POLL_SECONDS = 0.1


class _ClientOpener:
    def __init__(self, path: str) -> None:
        self._path = path
        self._client: Client | None = None

    def __await__(self) -> Generator[Any, None, Client]:
        return Client._open(self._path).__await__()

    async def __aenter__(self) -> Client:
        self._client = await Client._open(self._path)
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()


class Client:
    """Submit, control and query a database whose engine runs in another process."""

    def __init__(self, path: str, db: Database) -> None:
        self.path = path
        self._db = db
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> _ClientOpener:
        """Open an existing Taskdeck database (an engine created and migrated it)."""
        return _ClientOpener(os.fspath(path))

    @classmethod
    async def _open(cls, path: str) -> Client:
        if path == MEMORY:
            raise InvalidArgument("a Client cannot open ':memory:' (it belongs to one engine)")
        conn = await asyncio.to_thread(_connect_existing, path)
        try:
            version = schema_version(conn, path)
        except BaseException:
            conn.close()
            raise
        if version != SCHEMA_VERSION:
            conn.close()
            if version > SCHEMA_VERSION:
                from core.errors import SchemaTooNew

                raise SchemaTooNew(path, version, SCHEMA_VERSION)
            raise CorruptDatabase(
                path,
                f"schema version {version} is older than {SCHEMA_VERSION}; "
                "open it with an engine once to migrate it",
            )
        return cls(path, Database(path, conn, synchronous="NORMAL", publish=lambda events: None))

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._db.writer.drain()
            self._db.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed(f"the client of {self.path} was closed")

    @property
    def engine_running(self) -> bool:
        """Whether an engine holds the database now (so inbox requests are applied soon)."""
        return EngineLock(self.path).is_held_elsewhere()

    # -- submitting ---------------------------------------------------------------------

    def _kind_infos(self) -> dict[str, KindInfo]:
        rows = self._db.read(lambda c: c.execute("SELECT name, info FROM kinds").fetchall())
        return {name: info_from_json(json.loads(info)) for name, info in rows}

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
        """Queue one task. Any kind is accepted; kinds the engine registered are validated
        against their schema and get their defaults."""
        if parent is not None and (priority is None or group is None):
            found = self._db.read(
                lambda c: c.execute("SELECT priority, grp FROM tasks WHERE id = ?", (parent,)).fetchone()
            )
            if found is not None:  # children inherit their parent's priority and group
                priority = found[0] if priority is None else priority
                group = found[1] if group is None else group
        sub = Submission(
            kind,
            payload,
            priority=priority,
            key=key,
            on_duplicate=on_duplicate,  # type: ignore[arg-type]
            run_at=run_at,
            delay=delay,
            depends_on=tuple(depends_on),
            on_dependency_failure=on_dependency_failure,  # type: ignore[arg-type]
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
        return (await self.submit_many([sub]))[0]

    async def submit_many(
        self, submissions: Iterable[Submission], *, _retry_of: int | None = None
    ) -> list[SubmitResult]:
        self._check_open()
        infos = self._kind_infos()
        now = datetime.now().astimezone().timestamp()
        rows: list[NewTask] = []
        for i, sub in enumerate(submissions):
            if not isinstance(sub, Submission):
                raise InvalidArgument(f"submissions[{i}]: must be a Submission, got {type(sub).__name__}")
            rows.append(new_task(sub, info=infos.get(sub.kind), now=now, retry_of=_retry_of))
        db = self._db
        interrupts: list[int] = []

        def op(conn: Any) -> list[SubmitResult]:
            masks = pause_mask_from_db(conn)
            fx = db.sql.submit(conn, rows, lambda g: masks.get(g, masks[None]))
            for old in fx.interrupt:
                _inbox(conn, "interrupt", {"id": old, "reason": "supersede"}, now)
            interrupts.extend(fx.interrupt)
            return fx.results

        return await db.writer.run(op, long=len(rows) > 2000)

    async def retry(self, task_id: int) -> SubmitResult:
        rec = self.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        if not rec.is_terminal or rec.state in (TaskState.COMPLETED, TaskState.SKIPPED):
            raise InvalidState(
                f"task {task_id} is {rec.state.value}; only failed, cancelled or expired tasks can be retried"
            )
        return (await self.submit_many([resubmission(rec)], _retry_of=task_id))[0]

    async def retry_failed(self, kind: str | None = None) -> list[int]:
        recs = self._db.read(lambda c: unretried_failures(c, kind))
        return [(await self.submit_many([resubmission(r)], _retry_of=r.id))[0].id for r in recs]

    async def delete_history(self, ids: Iterable[int]) -> int:
        self._check_open()
        wanted = [int(i) for i in ids]
        db = self._db
        now = datetime.now().astimezone().timestamp()

        def op(conn: Any) -> int:
            found = q.deletable_history(conn, wanted)
            if found:
                q.delete_tasks(conn, found)
                q.record_pruned(db.sql, conn, now, found, user=True)
            return len(found)

        return await db.writer.run(op)

    # -- control: requests for the engine --------------------------------------------------

    async def _request(self, op: str, **args: Any) -> None:
        self._check_open()
        now = datetime.now().astimezone().timestamp()
        await self._db.writer.run(lambda conn: _inbox(conn, op, args, now))

    def _require_task(self, task_id: int, *, active: bool = True) -> TaskRecord:
        rec = self.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        if active and rec.is_terminal:
            raise InvalidState(f"task {task_id} already ended ({rec.state.value})")
        return rec

    async def cancel(self, task_id: int) -> None:
        self._require_task(task_id)
        await self._request("cancel", task_id=task_id)

    async def pause(self, task_id: int) -> None:
        self._require_task(task_id)
        await self._request("pause", task_id=task_id)

    async def resume(self, task_id: int) -> None:
        rec = self._require_task(task_id)
        if not {"user", "preempted"} & set(rec.pause_reasons):
            raise InvalidState(f"task {task_id} is not paused ({rec.state.value})")
        await self._request("resume", task_id=task_id)

    async def set_priority(self, task_id: int, priority: int) -> None:
        try:
            check_priority(priority)
        except ValueError as e:
            raise InvalidArgument(str(e)) from e
        self._require_task(task_id)
        await self._request("set_priority", task_id=task_id, priority=int(priority))

    async def move(self, task_id: int, before: int | None = None, *, to: str | None = None) -> None:
        if (before is None) == (to is None):
            raise InvalidArgument("move: give exactly one of before= or to=")
        if to is not None and to not in ("top", "bottom"):
            raise InvalidArgument(f"to: must be 'top' or 'bottom', got {to!r}")
        self._require_task(task_id)
        await self._request("move", task_id=task_id, before=before, to=to)

    async def pause_all(self) -> None:
        await self._request("pause_all")

    async def resume_all(self) -> None:
        await self._request("resume_all")

    async def hold(self) -> None:
        await self._request("hold")

    async def release(self) -> None:
        await self._request("release")

    async def pause_group(self, group: str, until: datetime | float | None = None) -> None:
        check_group_name(group)
        await self._request("pause_group", group=group, until=_seconds_until(until))

    async def resume_group(self, group: str) -> None:
        check_group_name(group)
        await self._request("resume_group", group=group)

    async def set_max_concurrency(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
            raise InvalidArgument(f"max_concurrency: must be an int in 1..1024, got {n!r}")
        await self._request("set_max_concurrency", n=n)

    async def set_group_limit(self, group: str, n: int | None) -> None:
        check_group_name(group)
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024):
            raise InvalidArgument(f"limit: must be None or an int in 1..1024, got {n!r}")
        await self._request("set_group_limit", group=group, n=n)

    async def set_rate_limit(self, scope: str, per_second: float | None, burst: float | None = None) -> None:
        scope, rate, burst = check_rate_limit(scope, per_second, burst)
        await self._request("set_rate_limit", scope=scope, per_second=rate, burst=burst)

    async def set_io_capacity(self, resource: str, bps: float | None) -> None:
        resource, bps = check_io_capacity(resource, bps)
        await self._request("set_io_capacity", resource=resource, bps=bps)

    async def set_group_weight(self, group: str, weight: float | None) -> None:
        await self._request("set_group_weight", group=check_group_name(group), weight=check_weight(weight))

    async def set_group_min_slots(self, group: str, n: int | None) -> None:
        n = check_min_slots(n, 1024)
        await self._request("set_group_min_slots", group=check_group_name(group), n=n)

    async def set_bandwidth_limit(self, bps: float | None, until: datetime | float | None = None) -> None:
        limit = check_bps(bps)
        await self._request("set_bandwidth_limit", bps=limit, until=_seconds_until(until))

    async def set_bandwidth_schedule(self, windows: Iterable[Any], tz: str | None = None) -> None:
        if isinstance(windows, str | bytes) or not isinstance(windows, Iterable):
            raise InvalidArgument(f"windows: must be a list of (days, start, end, bps), got {windows!r}")
        entries = [BandwidthWindow.of(w).to_json() for w in windows]
        await self._request("set_bandwidth_schedule", windows=entries, tz=tz)

    async def set_retention(self, keep: int | None = 10_000, days: float | None = 90.0) -> None:
        await self._request("set_retention", keep=keep, days=days)

    async def cancel_where(
        self,
        *,
        kind: str | None = None,
        group: str | None = None,
        tag: tuple[str, str] | None = None,
        state: str | None = None,
    ) -> list[int]:
        recs = self.tasks(states=[state] if state else None, kind=kind, group=group, tag=tag)
        for r in recs:
            await self._request("cancel", task_id=r.id)
        return [r.id for r in recs]

    # -- queries ------------------------------------------------------------------------

    def get(self, task_id: int) -> TaskRecord | None:
        """A task by id; a parent's progress is derived from its children's."""
        self._check_open()
        rec = self._db.read(lambda c: q.get(c, task_id))
        if rec is None or rec.is_terminal or rec.progress is not None:
            return rec
        count, ended, done, total, fractions = self._db.read(lambda c: q.tree_progress(c, task_id))
        if not count:
            return rec
        progress = min(1.0, done / total) if total else min(1.0, fractions / count)
        message = f"part {ended + 1} of {count}" if ended < count else f"all {count} parts done"
        return dataclasses.replace(
            rec,
            progress=progress,
            progress_message=message,
            bytes_done=done if total else None,
            bytes_total=total or None,
        )

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
        self._check_open()
        st = check_states(states)
        return self._db.read(
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
        self._check_open()
        found = self._db.read(q.counts)
        return {s.value: found.get(s.value, 0) for s in TaskState}

    def children(self, task_id: int) -> list[TaskRecord]:
        self._check_open()
        return self._db.read(
            lambda c: q.select_tasks(c, active=True, states=[s.value for s in TaskState], parent=task_id)
        )

    def dependencies(self, task_id: int) -> list[int]:
        self._check_open()
        return self._db.read(lambda c: q.dependencies(c, task_id))

    def dependents(self, task_id: int) -> list[int]:
        self._check_open()
        return self._db.read(lambda c: q.dependents(c, task_id))

    async def submit_graph(self, graph: Mapping[str, Submission]) -> dict[str, int]:
        """As Engine.submit_graph: named tasks and their dependencies, in one transaction."""
        self._check_open()
        order = graph_order(graph)
        infos = self._kind_infos()
        now = datetime.now().astimezone().timestamp()
        rows: list[NewTask] = []
        index: dict[str, int] = {}
        for name in order:
            sub = graph[name]
            ids = tuple(d for d in sub.depends_on if not isinstance(d, str))
            try:
                row = new_task(dataclasses.replace(sub, depends_on=ids), info=infos.get(sub.kind), now=now)
            except InvalidSubmission as e:
                raise InvalidSubmission(f"{name}.{e.field}", e.problem) from None
            row.depends_on = ids + tuple(-(index[d] + 1) for d in sub.depends_on if isinstance(d, str))
            index[name] = len(rows)
            rows.append(row)
        db = self._db

        def op(conn: Any) -> list[SubmitResult]:
            masks = pause_mask_from_db(conn)
            return db.sql.submit(conn, rows, lambda g: masks.get(g, masks[None])).results

        results = await db.writer.run(op)
        return {name: results[index[name]].id for name in graph}

    def events_of(self, task_id: int) -> list[Event]:
        self._check_open()
        return self._db.read(lambda c: q.events_of(c, task_id))

    def logs(self, task_id: int, since: int | None = None) -> list[LogLine]:
        self._check_open()
        return self._db.read(lambda c: q.logs(c, task_id, since))

    def stats(self, kind: str) -> KindStats:
        self._check_open()
        return self._db.read(lambda c: q.stats(c, kind))

    def kinds(self) -> list[KindInfo]:
        """Kinds the engine registered (as it last published them)."""
        self._check_open()
        return [info for _, info in sorted(self._kind_infos().items())]

    def settings(self) -> dict[str, Any]:
        self._check_open()
        return self._db.read(settings_get)

    def get_setting(self, name: str, default: Any = None) -> Any:
        """An app setting (see Engine.get_setting)."""
        self._check_open()
        key, _ = check_setting(name)
        value = self._db.read(lambda c: app_setting_get(c, key))
        return default if value is None else value

    async def set_setting(self, name: str, value: Any) -> None:
        """Store an app setting at once (a short write, like a submission; the engine
        holds no copy of app settings) and tell every follower with an event."""
        self._check_open()
        key, text = check_setting(name, value)
        db = self._db
        now = datetime.now().astimezone().timestamp()

        def write(conn: Any) -> None:
            app_setting_put(conn, key, text)
            db.sql.emit(conn, EventKind.SETTINGS_CHANGED, now, None, {"setting": name})

        await db.writer.run(write)

    def bandwidth(self) -> BandwidthStatus:
        """The global bandwidth limit as stored (see Engine.bandwidth)."""
        stored = self.settings().get("bandwidth") or {}
        try:
            policy = BandwidthPolicy.from_json(stored)
        except (InvalidArgument, ZoneInfoNotFoundError, ValueError):
            policy = BandwidthPolicy()
        return policy.status(datetime.now().astimezone().timestamp(), stored.get("tz"))

    def rate_limits(self) -> dict[str, tuple[float, float | None]]:
        stored = self.settings().get("rate_limits") or {}
        return {scope: (float(rate), burst) for scope, (rate, burst) in stored.items()}

    def group_shares(self) -> dict[str, dict[str, float]]:
        """Weights and minimum slots as stored (the share each gets is the engine's to say)."""
        stored = self.settings().get("group_shares") or {}
        return {g: {"weight": float(w), "min_slots": int(n)} for g, (w, n) in sorted(stored.items())}

    def io_capacity(self) -> dict[str, float]:
        """Configured IO capacities, bytes/s (resources not listed are learned)."""
        return dict(self.settings().get("io_capacity") or {})

    def groups(self) -> list[GroupInfo]:
        self._check_open()

        def read(c: Any) -> list[GroupInfo]:
            counts: dict[str, dict[str, int]] = {}
            for grp, state, n in c.execute(
                "SELECT grp, state, count(*) FROM tasks WHERE grp IS NOT NULL AND state IN "
                "('pending', 'blocked', 'running', 'waiting', 'paused') GROUP BY grp, state"
            ):
                counts.setdefault(grp, {})[state] = n
            limits = {
                r[0]: r[1:]
                for r in c.execute("SELECT name, max_concurrency, paused, paused_until FROM groups")
            }
            out = []
            for name in sorted(set(counts) | set(limits)):
                limit, paused, until = limits.get(name, (None, 0, None))
                if limit is None and not paused and name not in counts:
                    continue
                out.append(
                    GroupInfo(
                        name=name,
                        limit=limit,
                        paused=bool(paused),
                        paused_until=datetime.fromtimestamp(until).astimezone() if until else None,
                        counts=counts.get(name, {}),
                    )
                )
            return out

        return self._db.read(read)

    def snapshot(self) -> Snapshot:
        """What the database shows now (progress is at most a second old)."""
        self._check_open()
        running = tuple(
            RunningTask(
                id=r.id,
                kind=r.kind,
                label=r.label,
                priority=r.priority,
                group=r.group,
                started_at=r.started_at or r.created_at,
                progress=r.progress,
                progress_message=r.progress_message,
                bytes_done=r.bytes_done,
                bytes_total=r.bytes_total,
                speed=r.speed,
                eta=r.eta,
                interrupting=None,
            )
            for r in self.tasks(states=["running"])
        )
        counts = {k: v for k, v in self.counts().items() if TaskState(k).is_active}
        settings = self.settings()
        engine = settings.get("engine") or {}
        return Snapshot(
            running=running,
            counts=counts,
            max_concurrency=int(settings.get("max_concurrency", engine.get("max_concurrency", 4))),
            held=bool(engine.get("held", False)),
            paused_all=bool(settings.get("paused_all", False)),
            groups=tuple(self.groups()),
            rate_limits=self.rate_limits(),
            bandwidth=self.bandwidth(),
            group_shares=self.group_shares(),
            waiting={},
        )

    # -- following ----------------------------------------------------------------------

    # -- schedules ----------------------------------------------------------------------

    @property
    def schedules(self) -> Schedules:
        """The same API as engine.schedules: adds go straight in (the running engine picks
        them up), other changes are requests the engine applies."""
        return Schedules(self)

    async def _sched_add(self, specs: list[ScheduleSpec]) -> list[int]:
        self._check_open()
        infos = self._kind_infos()
        now = datetime.now().astimezone().timestamp()
        rows = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, ScheduleSpec):
                raise InvalidArgument(f"specs[{i}]: must be a ScheduleSpec, got {type(spec).__name__}")
            rows.append(build_schedule(spec, info=infos.get(spec.kind), now=now))
        db = self._db

        def op(conn: Any) -> list[int]:
            ids = []
            for row in rows:
                ids.append(store_schedules.insert(conn, row))
                db.sql.emit(conn, EventKind.SCHEDULE_ADDED, now, None, {"name": row.name}, schedule_id=row.id)
            return ids

        return await db.writer.run(op)

    def _require_schedule(self, schedule_id: int) -> None:
        if self._sched_get(schedule_id) is None:
            raise ScheduleNotFound(schedule_id)

    async def _sched_set_paused(self, schedule_id: int, paused: bool) -> None:
        self._require_schedule(schedule_id)
        await self._request("schedule_pause" if paused else "schedule_resume", schedule_id=schedule_id)

    async def _sched_remove(self, schedule_id: int) -> None:
        self._require_schedule(schedule_id)
        await self._request("schedule_remove", schedule_id=schedule_id)

    async def _sched_update(self, schedule_id: int, changes: dict[str, Any]) -> Schedule:
        self._require_schedule(schedule_id)
        row = self._db.read(lambda c: store_schedules.load(c, schedule_id))[0]
        now = datetime.now().astimezone().timestamp()
        spec = spec_with(row, changes)  # validate here, so a bad change fails for the caller
        build_schedule(spec, info=self._kind_infos().get(spec.kind), now=now)
        await self._request("schedule_update", schedule_id=schedule_id, changes=_jsonable(changes))
        return to_record(row)

    async def _sched_run_now(self, schedule_id: int) -> SubmitResult:
        self._require_schedule(schedule_id)
        row = self._db.read(lambda c: store_schedules.load(c, schedule_id))[0]
        now = datetime.now().astimezone().timestamp()
        task = task_for(row, info=self._kind_infos().get(row.kind), now=now, trigger="manual")
        db = self._db

        def op(conn: Any) -> SubmitResult:
            masks = pause_mask_from_db(conn)
            result = db.sql.submit(conn, [task], lambda g: masks.get(g, masks[None])).results[0]
            db.sql.emit(conn, EventKind.SCHEDULE_FIRED, now, result.id, {"at": now, "trigger": "manual"},
                        schedule_id=schedule_id)  # fmt: skip
            return result

        return await db.writer.run(op)

    def _sched_get(self, schedule_id: int) -> Schedule | None:
        self._check_open()
        rows = self._db.read(lambda c: store_schedules.load(c, schedule_id))
        return to_record(rows[0]) if rows else None

    def _sched_list(self) -> list[Schedule]:
        self._check_open()
        return [to_record(r) for r in self._db.read(store_schedules.load)]

    def last_seq(self) -> int:
        return self._db.read(q.last_event_seq)

    def events(self, since: int | None = None) -> AsyncGenerator[Event, None]:
        """Persisted events as they are committed (polled a few times a second); without
        `since`, those committed after this call."""
        self._check_open()
        return self._follow(self.last_seq() if since is None else since)

    async def _follow(self, cursor: int) -> AsyncGenerator[Event, None]:
        conn = self._db.reader
        version = None
        while not self._closed:
            page = self._db.read(functools.partial(q.events_after, seq=cursor, limit=1000))
            for ev in page:
                assert ev.seq is not None
                cursor = ev.seq
                yield ev
            if len(page) == 1000:
                continue
            while not self._closed:
                await asyncio.sleep(POLL_SECONDS)
                v = conn.execute("PRAGMA data_version").fetchone()[0]
                if v != version:
                    version = v
                    break

    async def wait(self, task_id: int, timeout: float | None = None) -> TaskRecord:
        """Wait until the task is terminal (polling the database)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            rec = self._require_task(task_id, active=False)
            if rec.is_terminal:
                return rec
            if deadline is not None and loop.time() >= deadline:
                raise WaitTimeout(task_id, timeout or 0)
            await asyncio.sleep(POLL_SECONDS)


def _connect_existing(path: str) -> Any:
    if not os.path.exists(path):
        raise CorruptDatabase(path, "no such file; start an engine (taskdeck worker) to create it")
    return connect(path)


def _jsonable(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Schedule changes as JSON for the inbox (datetimes as ISO text, policies as dicts)."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if isinstance(value, datetime):
            value = {"$datetime": value.isoformat()}
        elif hasattr(value, "to_json"):
            value = value.to_json()
        out[key] = value
    return out


def _seconds_until(until: datetime | float | None) -> float | None:
    """`until` as seconds from now: the engine measures it on its own clock."""
    if not isinstance(until, datetime):
        return until
    if until.tzinfo is None:
        raise InvalidArgument("until: must be timezone-aware")
    seconds = until.timestamp() - datetime.now().astimezone().timestamp()
    if seconds <= 0:
        raise InvalidArgument("until: must be in the future")
    return seconds


def _inbox(conn: Any, op: str, args: dict[str, Any], now: float) -> None:
    conn.execute("INSERT INTO inbox (op, args, at) VALUES (?, ?, ?)", (op, dumps(args), now))
