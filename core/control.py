"""Control of tasks and of the engine: pause, cancel, priorities, order, switches,
limits, retention, and the inbox through which clients ask for them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from core.clock import from_ts
from core.config import (
    _PAUSE_BITS,
    DEFAULT_DAYS,
    DEFAULT_KEEP,
    INBOX_OPS,
    INBOX_POLL_SECONDS,
    MAX_CONCURRENCY_LIMIT,
    PRUNE_BATCH,
    PRUNE_EVERY,
    PRUNE_PAUSE,
)
from core.dispatch import MirrorTask
from core.errors import (
    InvalidArgument,
    InvalidState,
    TaskNotFound,
)
from core.store import queries as q
from core.store.transitions import settings_put
from core.trees import TaskTrees
from core.types import (
    EventKind,
    GroupInfo,
    PauseReason,
    Priority,
    Submission,
    TaskRecord,
    TaskState,
)
from core.validation import check_priority, check_seconds

logger = logging.getLogger(__name__)
T = TypeVar("T")


class EngineControl(TaskTrees):
    """Control operations; every change is stored and emitted as an event."""

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

    async def _inbox_call(self, op: str, kwargs: dict[str, Any]) -> None:
        """Apply one request a client left in the inbox."""
        if op not in INBOX_OPS:
            raise InvalidArgument(f"unknown request {op!r}")
        if op == "interrupt":
            run = self._running.get(kwargs["id"])
            if run is not None:
                self._interrupt(run, kwargs.get("reason", "cancel"))
            return
        await getattr(self, op)(**kwargs)

    async def _apply_inbox(self) -> None:
        rows = self._db.read(lambda c: c.execute("SELECT id, op, args FROM inbox ORDER BY id").fetchall())
        if not rows:
            return
        failed: list[dict[str, Any]] = []
        for _, op, args in rows:
            try:
                await self._inbox_call(op, json.loads(args))
            except Exception as e:
                logger.warning("request %s%s from a client failed: %s", op, args, e)
                failed.append({"op": op, "args": args, "error": str(e) or type(e).__name__})
        last = rows[-1][0]
        now = self._now()

        def done(conn: Any) -> None:
            conn.execute("DELETE FROM inbox WHERE id <= ?", (last,))
            for f in failed:  # the sender follows events: tell it its request was refused
                self._db.sql.emit(conn, EventKind.REQUEST_FAILED, now, None, f)

        await self._db.writer.run(done)

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
        """Cancel a task and everything below it. A running one sees Interrupted at its next
        yield point and is cancelled after `preempt_grace`; the outcome arrives as a
        `cancelled` event. Dependents that need it end `dependency_failed`."""
        t = self._active(task_id)
        self._cancel_task(t, "cancelled by the user")
        await self._db.writer.drain()

    def _live_children(self, t: MirrorTask) -> list[MirrorTask]:
        return [k for k in (self._tasks.get(i) for i in sorted(self._kids.get(t.id, ()))) if k is not None]

    async def _set_reasons(
        self, t: MirrorTask, mask: int, event: EventKind | None, data: dict[str, Any] | None = None
    ) -> None:
        """Change the pause bits of a task that is not running."""
        db = self._db
        now = self._now()
        t.reasons = mask
        if t.state in (TaskState.PENDING, TaskState.PAUSED):
            self._settle(t)
        await db.writer.run(lambda conn: db.tr.set_pause(conn, t.id, now, mask, event=event, event_data=data))
        self._request_tick()

    async def _set_running_mask(self, t: MirrorTask, mask: int) -> None:
        """Store the pause bits of a running task before saying it is paused, so a crash
        brings it back paused (recovery keeps the bits of rows left running)."""
        t.reasons = mask
        db = self._db
        await db.writer.run(lambda conn: db.tr.set_running_mask(conn, t.id, mask))

    async def pause(self, task_id: int) -> None:
        """Pause a task; a running one stops at its next yield point keeping its checkpoint.
        Pausing a parent pauses its children too."""
        t = self._active(task_id)
        for kid in self._live_children(t):
            if not kid.reasons & PauseReason.USER:
                await self.pause(kid.id)
        if t.state == TaskState.WAITING or t.reasons & PauseReason.USER:
            return
        if t.run is not None:
            await self._set_running_mask(t, t.reasons | PauseReason.USER)  # a crash now: paused
            if t.run is not None:
                self._interrupt(t.run, "pause")
            return
        await self._set_reasons(t, t.reasons | PauseReason.USER, EventKind.PAUSED, {"reasons": ["user"]})

    async def resume(self, task_id: int) -> None:
        """Resume a task paused by the user (or preempted), and its paused children.
        Raises InvalidState if nothing there is paused."""
        t = self._active(task_id)
        kids = [k for k in self._live_children(t) if k.reasons & _PAUSE_BITS or k.state == TaskState.WAITING]
        if not t.reasons & _PAUSE_BITS and not kids:
            raise InvalidState(f"task {task_id} is not paused ({t.state})")
        for kid in kids:
            with contextlib.suppress(InvalidState):
                await self.resume(kid.id)
        if not t.reasons & _PAUSE_BITS:
            return
        mask = t.reasons & ~_PAUSE_BITS
        if t.run is not None:  # asked to pause, not stopped yet: let it go on
            await self._set_running_mask(t, mask)
            run = t.run
            if run is not None and run.interrupt == "pause" and not mask:
                run.interrupt = None
                if run.grace_timer is not None:
                    run.grace_timer.cancel()
                    run.grace_timer = None
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
        running: list[tuple[int, int]] = []
        interrupt = []
        for t in list(self._tasks.values()):
            if not match(t) or t.state == TaskState.WAITING:
                continue
            mask = (t.reasons | bit) if on else (t.reasons & ~bit)
            if mask == t.reasons:
                continue
            if t.run is not None:
                t.reasons = mask
                running.append((t.id, mask))
                if on:
                    interrupt.append(t.run)
                continue
            t.reasons = mask
            if t.state in (TaskState.PENDING, TaskState.PAUSED):
                self._settle(t)
            changes.append((t.id, mask))
        db = self._db

        def op(conn: Any) -> None:
            extra(conn)
            db.tr.set_pause_many(conn, changes)
            for task_id, mask in running:  # a crash from now on brings them back paused
                db.tr.set_running_mask(conn, task_id, mask)
            db.sql.emit(conn, event, self._now(), None, {"tasks": len(changes) + len(running)}, scope=scope)

        await db.writer.run(op, long=len(changes) > 5000)
        for run in interrupt:
            self._interrupt(run, "pause")
        self._request_tick()

    def _until_ts(self, until: datetime | float | None) -> float | None:
        """`until` (an aware datetime, or seconds from now) as a timestamp."""
        if until is None:
            return None
        if isinstance(until, datetime):
            if until.tzinfo is None:
                raise InvalidArgument("until: must be timezone-aware")
            return until.timestamp()
        try:
            return self._now() + check_seconds("until", until)
        except ValueError as e:
            raise InvalidArgument(str(e)) from e

    async def pause_group(self, group: str, until: datetime | float | None = None) -> None:
        """Pause a group's tasks, until resumed or until `until` (aware datetime or seconds)."""
        self._check_open()
        if not isinstance(group, str) or not group:
            raise InvalidArgument(f"group: must be a non-empty string, got {group!r}")
        until_ts = self._until_ts(until)
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
        self._ready.unpark(("group", group))
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

        # A subscriber of this engine that lags behind still gets every event: events it
        # has not read stay (without their task) until it has, then a sweep takes them.
        readable = self._bus.min_cursor()
        swept, self._events_swept = (
            self._events_swept,
            readable if readable is not None else self._bus.last_seq,
        )

        def op(conn: Any) -> int:
            ids = q.prune_candidates(conn, keep=keep, older_than=cutoff, limit=PRUNE_BATCH)
            if ids:
                q.delete_tasks(conn, ids, events_upto=readable)
                q.record_pruned(db.sql, conn, now, ids, user=False)
            if self._events_swept > swept:
                q.sweep_events(conn, swept, self._events_swept)
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
