"""The engine's state machine core: the in-memory mirror of active tasks, dispatch, and
the plumbing between transitions, the store and the event bus. Running handlers,
control and the public API build on it (runner.py, control.py, engine.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from core.bandwidth import BandwidthPolicy, ByteBucket
from core.clock import Clock, SystemClock
from core.config import (
    PRUNE_EVERY,
    EngineConfig,
    _Settings,
)
from core.context import TaskContext
from core.dispatch import MirrorTask, Park, ReadyQueue
from core.errors import (
    EngineClosed,
    UnknownKind,
)
from core.eventbus import EventBus
from core.lock import EngineLock
from core.registry import KindSpec, checked_payload, submit_defaults
from core.resources import IoState, PsutilSampler, Sampler, TokenBucket, budget_of, pressure_threshold
from core.store import queries as q
from core.store.database import Database
from core.store.schedules import SchedRow
from core.store.tasks import NewTask, SubmitEffects, TaskRun, options_of
from core.timers import TimerHandle, Timers
from core.types import (
    DEFAULT_RETRY,
    JSON,
    EventKind,
    KindInfo,
    PauseReason,
    Recovery,
    Submission,
    SubmitResult,
    TaskState,
)
from core.validation import new_task

logger = logging.getLogger(__name__)

_NO_BUDGET: Mapping[str, float] = {}
_PRESSURE: Park = ("pressure",)
_RATE: Park = ("rate",)
T = TypeVar("T")


class _Run:
    """One execution of a task (an attempt, or the rest of one after a pause)."""

    __slots__ = (
        "atask",
        "budget",
        "bw",
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
        "io_mark",
        "message",
        "payload",
        "policy",
        "progress",
        "rate_done",
        "rate_frac",
        "rate_t",
        "schedule_id",
        "seq",
        "spec",
        "speed",
        "started_at",
        "task",
        "timeout",
        "timeout_timer",
        "total",
        "waiting",
        "worker",
    )

    def __init__(self, engine: EngineBase, task: MirrorTask) -> None:
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
        self.seq = 0  # claim order: tells apart runs started at the same instant
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
        self.budget: Mapping[str, float] = _NO_BUDGET  # IO it holds while it runs
        self.io_mark: tuple[int, ...] = (0, 0, 0, 0)  # self.io at the last sample
        self.bw: ByteBucket | None = None  # its own bandwidth limit (payload bandwidth_limit)
        self.waiting: asyncio.Future[None] | None = None  # while it waits for bandwidth
        self.ctx = TaskContext(self)


def io_key(io: Any) -> tuple[tuple[str, float], ...] | None:
    """A task's own IO budget as a hashable lane key (None: it has none of its own)."""
    budget = budget_of(io)
    return tuple(sorted(budget.items())) if budget else None


class EngineBase(ABC):
    """State shared by every part of the engine; see Engine for the public API."""

    # Hooks that the layers above fill in (runner.py, control.py).

    @abstractmethod
    def _claimed(self, run: _Run, row: tuple[Any, ...] | None, err: BaseException | None) -> None:
        """Start a run whose claim committed (row), or undo it (None)."""

    @abstractmethod
    def _interrupt(self, run: _Run, reason: str, grace: float | None = None) -> None:
        """Ask a running task to stop, for `reason`."""

    @abstractmethod
    def _flush_buffers(self, force: bool = False) -> None:
        """Queue buffered log lines and progress for the next commit."""

    @abstractmethod
    def _on_external_events(self, events: list[Any]) -> None:
        """Events other processes committed (raw rows), after the mirror took them in."""

    @abstractmethod
    def _dispatch_shares(self, now: float) -> None:
        """Group weights or minimum slots are set: give each group its fair share first."""

    @abstractmethod
    def _schedule_promotion(self) -> None:
        """Aging is on: wake up when the next queued task's effective priority improves."""

    @abstractmethod
    def _learn_kind_io(self, run: _Run, now: float) -> None:
        """A run ended: fold its IO rates into its kind's averages."""

    @abstractmethod
    async def _throttle(self, run: _Run, nbytes: int) -> None:
        """Wait until `nbytes` may move under the bandwidth limits."""

    @abstractmethod
    def _preempt(self) -> None:
        """Slots are full and ready work waits: interrupt less urgent running tasks."""

    @abstractmethod
    def _link(self, t: MirrorTask, blockers: Iterable[int]) -> None:
        """Record a new task's parent and the unfinished dependencies it waits for."""

    @abstractmethod
    def _on_adopted(self, tasks: list[MirrorTask]) -> None:
        """Link tasks read from the database into their trees and graphs."""

    @abstractmethod
    async def _spawn(self, run: _Run, subs: Sequence[Any], parent_id: int) -> list[SubmitResult]:
        """Submit children of `parent_id` (TaskContext.spawn_children)."""

    @abstractmethod
    def _resolve_parent(self, t: MirrorTask) -> None:
        """A waiting parent's children all ended: queue it to finalize."""

    @abstractmethod
    def _task_ended(self, t: MirrorTask, state: str, error: str | None) -> None:
        """An active task reached a terminal state: tell its parent and its dependents."""

    @abstractmethod
    def _prune_step(self) -> None:
        """Run one batch of history retention."""

    @abstractmethod
    def _report_progress(
        self, run: _Run, fraction: float | None, message: str | None, done: int | None, total: int | None
    ) -> None:
        """Record a run's progress (TaskContext.progress)."""

    @abstractmethod
    def _append_log(self, task_id: int, level: str, message: str) -> None:
        """Buffer a log line of a task (TaskContext.log)."""

    @abstractmethod
    async def _save_checkpoint(self, run: _Run, data: JSON, text: str) -> None:
        """Persist a run's resume data (TaskContext.checkpoint)."""

    """A durable priority task queue on SQLite. Open with `await Engine.open(path)`."""

    def __init__(self, path: str, config: EngineConfig, conn: Any, lock: EngineLock | None) -> None:
        self.path = path
        self.config = config
        self._clock: Clock = config.clock or SystemClock()
        self._init_now()
        self._lock = lock
        self._db = Database(path, conn, synchronous=config.synchronous, publish=self._on_committed)
        self._kinds: dict[str, KindSpec] = {}
        self._tasks: dict[int, MirrorTask] = {}
        self._aging = config.aging
        self._ready = ReadyQueue(config.aging, self._now)
        self._timers = Timers(self._clock)
        self._timers.after_fire = self._tick_now  # a timer made a task ready: dispatch now
        self._running: dict[int, _Run] = {}
        self._kids: dict[int, set[int]] = {}  # parent id -> ids of its live children
        self._dependents: dict[int, set[int]] = {}  # task id -> blocked tasks waiting on it
        self._fail_reasons: dict[int, str] = {}  # running parents failed fast by a child
        self._events_swept = 0  # events of pruned tasks are swept up to this seq
        # Gates beyond slots (resources.py): rate limits, IO headroom, pressure.
        self._buckets: dict[str, TokenBucket] = {}
        self._io = IoState()
        self._io.configured.update(config.io_capacity or {})
        self._sampler: Sampler = config.resource_sampler or PsutilSampler()
        self._pressure_sources: dict[str, Callable[[], float]] = {
            str(getattr(fn, "name", None) or getattr(fn, "__name__", f"source{i}")): fn
            for i, fn in enumerate(config.pressure_sources)
        }
        self._pressure = 0.0
        self._pressure_source: str | None = None
        self._kind_io: dict[str, dict[str, float]] = {}  # learned from history (stats)
        self._budgets: dict[Any, Mapping[str, float]] = {}  # IO budgets as dicts, by their key
        self._refusals: dict[Any, str] = {}  # lane -> why its head was refused last
        self._gates_wake: TimerHandle | None = None
        self._preempted_by: dict[int, int] = {}  # victim -> the task it made room for
        self._claim_seq = itertools.count(1)
        self._kind_io_acc: dict[str, list[float]] = {}  # kind -> seconds run, then bytes of each
        self._promotion_timer: TimerHandle | None = None  # aging
        self._bw = BandwidthPolicy()
        self._bw_tz_name: str | None = None
        self._bw_bucket: ByteBucket | None = None  # the global bandwidth limit, shared
        self._bw_waiters: set[asyncio.Future[None]] = set()
        self._bw_timer: TimerHandle | None = None
        self._scheds: dict[int, SchedRow] = {}  # schedules, by id
        self._sched_timers: dict[int, TimerHandle] = {}
        self._sched_runs: dict[int, set[int]] = {}  # schedule id -> its active tasks
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
        # cleanup hooks of tasks cancelled before start(): they run once it has started
        self._deferred_cleanups: list[Callable[[], Coroutine[Any, Any, None]]] = []
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

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the engine's clock (so a fake clock drives it in tests)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self._timers.call_at(self._now() + max(0.0, seconds), wake)
        try:
            await fut
        finally:
            handle.cancel()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _init_now(self) -> None:
        """The real clock's now() is time.time(); skip building a datetime on every read."""
        if type(self._clock) is SystemClock:
            self._now = time.time  # type: ignore[method-assign]

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed(f"the engine on {self.path} was stopped")

    def _kind_info(self, kind: str) -> KindInfo:
        spec = self._kinds.get(kind)
        if spec is None:
            raise UnknownKind(kind)
        return spec.info

    def _new_task(self, sub: Submission, *, retry_of: int | None = None) -> NewTask:
        self._check_open()
        info = self._kind_info(sub.kind) if isinstance(sub.kind, str) else None
        spec = self._kinds.get(sub.kind) if info is not None else None
        if spec is not None and spec.validate is not None:
            sub = dataclasses.replace(sub, payload=checked_payload(spec, sub.payload))
        if spec is not None and spec.defaults is not None:
            given = {"group": sub.group, "key": sub.key, "label": sub.label}
            missing = {k: v for k, v in submit_defaults(spec, sub.payload).items() if given[k] is None}
            if missing:
                sub = dataclasses.replace(sub, **missing)
        return new_task(sub, info=info, now=self._now(), retry_of=retry_of)

    def _pause_mask(self, group: str | None) -> int:
        mask = PauseReason.GLOBAL if self._settings.paused_all else 0
        if group is not None and group in self._settings.paused_groups:
            mask |= PauseReason.GROUP
        return int(mask)

    async def _submit_rows(
        self, rows: Sequence[NewTask | TaskRun], *, long: bool = False
    ) -> list[SubmitResult]:
        db = self._db
        mask_of = self._pause_mask
        fx: SubmitEffects = await db.writer.run(lambda conn: db.sql.submit(conn, rows, mask_of), long=long)
        self._apply_submit_effects(fx)
        return fx.results

    def _apply_submit_effects(self, fx: SubmitEffects) -> None:
        for task_id, t, mask, blockers in fx.inserted:
            state = TaskState.BLOCKED if blockers else TaskState.PAUSED if mask else TaskState.PENDING
            m = MirrorTask(
                task_id,
                t.kind,
                t.priority,
                float(task_id),
                t.group,
                state,
                mask,
                t.run_at,
                t.expires_at,
                t.parent_id,
                False,
                t.label,
                1,
                fail_fast=t.fail_fast,
                dep_policy=t.dep_policy,
            )
            m.schedule_id = t.schedule_id
            if t.options_json is not None and '"io"' in t.options_json:
                m.io = io_key(options_of(t.options_json)["io"])
            if t.schedule_id is not None:
                self._sched_runs.setdefault(t.schedule_id, set()).add(task_id)
            self._tasks[task_id] = m
            if state == TaskState.PENDING:
                self._make_pending(m)
            if t.expires_at is not None:
                m.ttl_timer = self._timers.call_at(t.expires_at, functools.partial(self._on_ttl, m))
            if t.parent_id is not None or blockers:
                self._link(m, blockers)
        for first, t, mask, count in fx.runs:
            self._adopt_run(first, t, mask, count)
        if fx.changed:
            self._refresh(fx.changed)
        for task_id in fx.interrupt:
            run = self._running.get(task_id)
            if run is not None:
                self._interrupt(run, "supersede")
            else:
                self._refresh([task_id])
        if fx.inserted or fx.changed or fx.runs:
            self._request_tick()

    def _adopt_run(self, first: int, t: NewTask, mask: int, count: int) -> None:
        """Mirror `count` tasks inserted from id `first` on that share template `t`."""
        state = TaskState.PAUSED if mask else TaskState.PENDING
        io = io_key(options_of(t.options_json)["io"]) if t.options_json and '"io"' in t.options_json else None
        tasks = self._tasks
        kind, priority, group, run_at, expires_at = t.kind, t.priority, t.group, t.run_at, t.expires_at
        label, fail_fast, dep_policy = t.label, t.fail_fast, t.dep_policy
        ready: list[MirrorTask] = []
        due = not mask and (run_at is None or run_at <= self._now())
        for task_id in range(first, first + count):
            m = MirrorTask(
                task_id, kind, priority, float(task_id), group, state, mask, run_at, expires_at, None, False,
                label, 1, fail_fast=fail_fast, dep_policy=dep_policy,
            )  # fmt: skip
            if io is not None:
                m.io = io
            tasks[task_id] = m
            if due:
                ready.append(m)
            elif not mask:
                self._make_pending(m)
            if expires_at is not None:
                m.ttl_timer = self._timers.call_at(expires_at, functools.partial(self._on_ttl, m))
        if ready:
            self._ready.push_new(ready)
            if self._idle:
                self._idle = False

    def _refresh(self, ids: Iterable[int]) -> None:
        """Re-read tasks whose rows changed behind the mirror's back."""
        ids = list(ids)
        rows = self._db.read(lambda c: self._db.sql.load_active(c, ids))
        seen = set()
        adopted: list[MirrorTask] = []
        for row in rows:
            seen.add(row[0])
            t = self._tasks.get(row[0])
            if t is not None and t.state == TaskState.RUNNING:
                # only the fields a running task may change through a submit
                t.priority = row[2]
                continue
            adopted.append(self._adopt(row))
        self._on_adopted(adopted)
        for task_id in ids:
            if task_id not in seen and task_id in self._tasks and task_id not in self._running:
                self._forget(self._tasks[task_id])

    def _adopt(self, row: tuple[Any, ...]) -> MirrorTask:
        """Put a task row (from load_active) into the mirror and, if ready, the queue.
        The caller links it into its tree and graph (_on_adopted)."""
        (id_, kind, priority, pos, grp, state, reasons, run_at, expires_at, parent_id, started, label,
         attempt, phase, options, schedule_id) = row  # fmt: skip
        opts = options_of(options) if options else {}
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
            t.run_at, t.expires_at, t.parent_id, t.started, t.label = (
                run_at,
                expires_at,
                parent_id,
                bool(started),
                label,
            )
            t.attempt = attempt
        t.phase = phase
        t.schedule_id = schedule_id
        if schedule_id is not None:
            self._sched_runs.setdefault(schedule_id, set()).add(id_)
        t.fail_fast = opts.get("fail_fast", True)
        t.dep_policy = opts.get("on_dependency_failure", "cancel")
        t.io = io_key(opts.get("io"))
        if state in (TaskState.PENDING, TaskState.PAUSED):
            self._settle(t)
        if expires_at is not None and not t.started and state != TaskState.RUNNING:
            t.ttl_timer = self._timers.call_at(expires_at, functools.partial(self._on_ttl, t))
        return t

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

    def _settle(self, t: MirrorTask) -> None:
        """Queue or park a task that is neither running, blocked nor waiting, by its pause
        bits: none, it is pending; only "preempted", it is paused but queued for its slot
        back; anything else, it is paused."""
        if not t.reasons:
            self._make_pending(t)
            return
        if t.timer is not None:
            t.timer.cancel()
            t.timer = None
        t.state = TaskState.PAUSED
        if t.reasons == PauseReason.PREEMPTED:
            self._ready.push(t)
        else:
            self._ready.discard(t)

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
        self._task_ended(t, TaskState.EXPIRED, "expired before it started (ttl ran out)")
        self._request_tick()

    def _request_tick(self) -> None:
        if not self._tick_pending and not self._closed:
            self._tick_pending = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._tick)

    def _tick_now(self) -> None:
        """Run a requested tick at once (the call_soon'd one then finds nothing to do): a
        timer that made a task ready starts it in the same turn of the loop."""
        if self._tick_pending:
            self._tick()

    def _tick(self) -> None:
        self._tick_pending = False
        if self._closed:
            return
        self._dispatch()
        self._flush_buffers()
        self._db.writer.flush()
        self._check_idle()

    def _admit(self, t: MirrorTask) -> Park | None:
        """None if a lane's head may start now (free slots aside); else the gate that
        refuses it, to park the lane under. The reason in words is kept for wait_reason."""
        g = t.group
        if g is not None:
            limit = self._settings.group_limits.get(g)
            if limit is not None and self._group_running.get(g, 0) >= limit:
                self._refusals[t.lane] = f"group {g} at its limit ({limit})"
                return ("group", g)
        if self._pressure and self._pressure >= pressure_threshold(t.eff):
            self._refusals[t.lane] = f"{self._pressure_source or 'system'} pressure {self._pressure:.2f}"
            return _PRESSURE
        if self._buckets:
            now = ready = self._now()
            by_kind = self._buckets.get("kind:" + t.kind)
            if by_kind is not None:
                ready = max(ready, by_kind.ready_at(now))
            by_group = self._buckets.get(f"group:{g}")
            if by_group is not None:
                ready = max(ready, by_group.ready_at(now))
            if ready > now:
                self._refusals[t.lane] = f"rate limited: next in {ready - now:.1f} s"
                self._wake_at(ready)
                return _RATE
        budget = self._budget(t)
        if budget:
            refused = self._io.refusal(budget, self.config.io_threshold)
            if refused is not None:
                self._refusals[t.lane] = self._io.describe(refused[0])
                return ("io", *refused)
        self._refusals.pop(t.lane, None)
        return None

    def _io_freed(self) -> None:
        """IO headroom may have grown: lanes waiting for it whose need now fits may go."""
        threshold = self.config.io_threshold
        self._ready.unpark_io(lambda r: self._io.headroom(r, threshold))

    def _budget(self, t: MirrorTask) -> Mapping[str, float]:
        """A task's IO budget: its own, its kind's, or what its kind did on average."""
        if t.io is not None:
            budget = self._budgets.get(t.io)
            if budget is None:
                budget = self._budgets[t.io] = dict(t.io)
            return budget
        spec = self._kinds.get(t.kind)
        if spec is not None and spec.info.io is not None:
            budget = self._budgets.get(spec.info.io)
            if budget is None:
                budget = self._budgets[spec.info.io] = budget_of(spec.info.io.to_json())
            return budget
        return self._kind_io.get(t.kind, _NO_BUDGET)

    def _wake_at(self, when: float) -> None:
        """Dispatch again at `when` (a token comes due), not before: no polling."""
        if self._gates_wake is not None and self._gates_wake.when <= when and not self._gates_wake.cancelled:
            return
        if self._gates_wake is not None:
            self._gates_wake.cancel()
        self._gates_wake = self._timers.call_at(when, self._gates_due)

    def _gates_due(self) -> None:
        self._gates_wake = None
        self._ready.unpark(_RATE)
        self._request_tick()

    def _dispatch(self) -> None:
        if self._aging is not None:
            self._schedule_promotion()
        if not self._dispatching or self._held:
            return
        now = self._now()
        if self._settings.group_shares and self._ready.count:
            self._dispatch_shares(now)
        while len(self._running) < self._settings.max_concurrency:
            t = self._ready.pop(self._admit)
            if t is None:
                break
            self._start(t, now)
        if self.config.preempt_at is not None and self._ready.count:
            self._preempt()

    def _start(self, t: MirrorTask, now: float) -> None:
        if t.expires_at is not None and not t.started and t.expires_at <= now:
            self._expire(t)
        else:
            self._claim(t, now)

    def _claim(self, t: MirrorTask, now: float) -> None:
        db = self._db
        run = _Run(self, t)
        run.started_at = now
        run.seq = next(self._claim_seq)
        if self._buckets:
            for scope in (f"kind:{t.kind}", f"group:{t.group}"):
                bucket = self._buckets.get(scope)
                if bucket is not None:
                    bucket.take(now)
        run.budget = self._budget(t)
        if run.budget:
            self._io.hold(run.budget, +1)
        if t.state == TaskState.PAUSED:  # preempted earlier: its slot is back
            t.reasons = 0
            self._preempted_by.pop(t.id, None)
            db.writer.enqueue(lambda conn: db.tr.set_pause(conn, t.id, now, 0, event=EventKind.RESUMED))
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

    def _release_slot(self, run: _Run) -> None:
        t = run.task
        if t.id in self._running and (run.io[0] or run.io[1] or run.io[2] or run.io[3]):
            self._learn_kind_io(run, self._now())
        if run.budget:
            self._io.hold(run.budget, -1)
            run.budget = _NO_BUDGET
            self._io_freed()
        if self._running.pop(t.id, None) is not None:
            n = self._group_running.get(t.group, 1) - 1
            if n:
                self._group_running[t.group] = n
            else:
                self._group_running.pop(t.group, None)
            if t.group is not None:
                self._ready.unpark(("group", t.group))

    def _check_idle(self) -> None:
        idle = not self._running and self._ready.count == 0
        if idle and self._idle is False and self._started and not self._closed:
            self._db.writer.enqueue(lambda conn: self._db.sql.emit(conn, EventKind.IDLE, self._now()))
            self._db.writer.flush()
        self._idle = idle

    def _after_terminal(self, task_id: int) -> None:
        for f in self._waiters.pop(task_id, ()):
            if not f.done():
                f.set_result(None)
        self._terminal_since_prune += 1
        keep = self._settings.retention_keep
        every = PRUNE_EVERY if keep is None else max(1, min(PRUNE_EVERY, keep // 8))
        if self._terminal_since_prune >= every and not self._prune_running:
            self._terminal_since_prune = 0
            self._prune_running = True
            assert self._loop is not None
            self._loop.call_soon(self._prune_step)

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
                rows = self._db.read(functools.partial(self._db.sql.load_active, ids=new_ids))
                self._on_adopted([self._adopt(row) for row in rows])
                self._request_tick()
            if changed:
                self._refresh(changed)
            self._on_external_events(events)
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
