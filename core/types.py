"""Frozen records and enums that cross core's boundary."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, IntFlag, StrEnum
from typing import Any, Literal, NamedTuple

JSON = Any  # a JSON-serialisable value: dict, list, str, int, float, bool or None

DuplicatePolicy = Literal["skip", "supersede", "reject", "requeue"]
DependencyPolicy = Literal["cancel", "ignore"]
RunIn = Literal["loop", "thread", "process"]


class Priority(IntEnum):
    """Named priority levels; lower is more urgent (like nice)."""

    CRITICAL = 0
    HIGH = 64
    NORMAL = 128
    LOW = 192
    IDLE = 255


class TaskState(StrEnum):
    """Where a task is in its life; the values are what SQLite stores."""

    PENDING = "pending"  # ready, or waiting for run_at, or in retry backoff
    BLOCKED = "blocked"  # unfinished dependencies
    RUNNING = "running"
    WAITING = "waiting"  # parent whose handler returned while children are live
    PAUSED = "paused"  # see TaskRecord.pause_reasons
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    DEPENDENCY_FAILED = "dependency_failed"
    SKIPPED = "skipped"  # a schedule fire skipped by overlap

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        return self not in TERMINAL_STATES


ACTIVE_STATES = frozenset(
    {TaskState.PENDING, TaskState.BLOCKED, TaskState.RUNNING, TaskState.WAITING, TaskState.PAUSED}
)
TERMINAL_STATES = frozenset(TaskState) - ACTIVE_STATES


class PauseReason(IntFlag):
    """Why a task is paused; stored as a bit mask, several may hold at once."""

    USER = 1
    PREEMPTED = 2
    GROUP = 4
    GLOBAL = 8

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name.lower() for r in PauseReason if r in self and r.name)


class SubmitOutcome(StrEnum):
    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    UPGRADED = "upgraded"
    REQUEUED = "requeued"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


class EventKind(StrEnum):
    """Kinds of events; past tense. `progress` alone is never persisted."""

    SUBMITTED = "submitted"
    STARTED = "started"
    PROGRESS = "progress"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    RESUMED = "resumed"
    PREEMPTED = "preempted"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    UPGRADED = "upgraded"
    REQUEUED = "requeued"
    INTERRUPTED = "interrupted"  # stopped by engine.stop; pending again
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    WAITING = "waiting"
    FINALIZING = "finalizing"  # a waiting parent's children ended; it is queued to finalize
    DEPENDENCY_FAILED = "dependency_failed"
    PRIORITY_CHANGED = "priority_changed"
    MOVED = "moved"
    CHECKPOINTED = "checkpointed"
    DELETED = "deleted"  # history rows removed by the user
    PRUNED = "pruned"  # history rows removed by retention
    SETTINGS_CHANGED = "settings_changed"
    LIMITS_CHANGED = "limits_changed"
    GROUP_PAUSED = "group_paused"
    GROUP_RESUMED = "group_resumed"
    ALL_PAUSED = "all_paused"
    ALL_RESUMED = "all_resumed"
    HELD = "held"
    RELEASED = "released"
    IDLE = "idle"
    RECOVERED = "recovered"
    STARTED_ENGINE = "engine_started"
    REQUEST_FAILED = "request_failed"  # a client's control request the engine refused
    SCHEDULE_ADDED = "schedule_added"
    SCHEDULE_UPDATED = "schedule_updated"
    SCHEDULE_PAUSED = "schedule_paused"
    SCHEDULE_RESUMED = "schedule_resumed"
    SCHEDULE_REMOVED = "schedule_removed"
    SCHEDULE_FIRED = "schedule_fired"
    SCHEDULE_SKIPPED = "schedule_skipped"
    SCHEDULE_MISSED = "schedule_missed"


def _check_seconds(name: str, value: float, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: must be a number of seconds, got {value!r}")
    value = float(value)
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be finite and {bound}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many times a retryable failure is retried, and after how long.

    `max_retries=3` allows 4 attempts. Delays are seconds: fixed, or
    `base * factor**(attempt-1)` capped at `cap`, spread by +/- `jitter` (a fraction).
    """

    max_retries: int = 3
    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries: must be an int, got {self.max_retries!r}")
        if not 0 <= self.max_retries <= 1000:
            raise ValueError(f"max_retries: must be in 0..1000, got {self.max_retries}")
        _check_seconds("base", self.base)
        _check_seconds("cap", self.cap)
        if not 1.0 <= _check_seconds("factor", self.factor) <= 100:
            raise ValueError(f"factor: must be in 1..100, got {self.factor!r}")
        if not 0.0 <= _check_seconds("jitter", self.jitter) <= 1.0:
            raise ValueError(f"jitter: must be in 0..1, got {self.jitter!r}")

    @classmethod
    def fixed(cls, max_retries: int = 3, delay: float = 1.0) -> RetryPolicy:
        return cls(max_retries=max_retries, base=delay, factor=1.0, cap=delay, jitter=0.0)

    @classmethod
    def exponential(
        cls,
        max_retries: int = 3,
        base: float = 1.0,
        factor: float = 2.0,
        cap: float = 300.0,
        jitter: float = 0.1,
    ) -> RetryPolicy:
        return cls(max_retries=max_retries, base=base, factor=factor, cap=cap, jitter=jitter)

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(max_retries=0)

    def delay_for(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed."""
        exponent = max(0, failed_attempt - 1)
        try:
            delay = min(self.cap, self.base * self.factor**exponent)
        except OverflowError:
            delay = self.cap
        if self.jitter and delay > 0:
            delay *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, delay)

    def to_json(self) -> dict[str, float | int]:
        return {
            "max_retries": self.max_retries,
            "base": self.base,
            "factor": self.factor,
            "cap": self.cap,
            "jitter": self.jitter,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetryPolicy:
        return cls(**{k: data[k] for k in ("max_retries", "base", "factor", "cap", "jitter")})


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class IoBudget:
    """Expected throughput of a task while it runs, in bytes per second."""

    disk_read: float = 0
    disk_write: float = 0
    net_rx: float = 0
    net_tx: float = 0

    def __post_init__(self) -> None:
        for name in ("disk_read", "disk_write", "net_rx", "net_tx"):
            _check_seconds(name, getattr(self, name))  # same shape check: finite, >= 0

    @property
    def is_zero(self) -> bool:
        return not (self.disk_read or self.disk_write or self.net_rx or self.net_tx)

    def to_json(self) -> dict[str, float]:
        return {
            "disk_read": self.disk_read,
            "disk_write": self.disk_write,
            "net_rx": self.net_rx,
            "net_tx": self.net_tx,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IoBudget:
        return cls(**{k: data.get(k, 0) for k in ("disk_read", "disk_write", "net_rx", "net_tx")})


@dataclass(frozen=True, slots=True, kw_only=True)
class IoCounts:
    """Bytes a task actually moved (reported through ctx.record_io)."""

    read: int = 0
    written: int = 0
    sent: int = 0
    received: int = 0


@dataclass(frozen=True, slots=True)
class Submission:
    """One task to submit through submit_many / submit_graph."""

    kind: str
    payload: JSON = None
    priority: int | None = field(default=None, kw_only=True)
    key: str | None = field(default=None, kw_only=True)
    on_duplicate: DuplicatePolicy = field(default="skip", kw_only=True)
    run_at: datetime | None = field(default=None, kw_only=True)
    delay: float | None = field(default=None, kw_only=True)
    depends_on: tuple[int | str, ...] = field(default=(), kw_only=True)
    on_dependency_failure: DependencyPolicy = field(default="cancel", kw_only=True)
    parent: int | None = field(default=None, kw_only=True)
    group: str | None = field(default=None, kw_only=True)
    tags: Mapping[str, str] | None = field(default=None, kw_only=True)
    label: str | None = field(default=None, kw_only=True)
    retry: RetryPolicy | None = field(default=None, kw_only=True)
    timeout: float | None = field(default=None, kw_only=True)
    ttl: float | None = field(default=None, kw_only=True)
    io: IoBudget | None = field(default=None, kw_only=True)
    fail_fast: bool | None = field(default=None, kw_only=True)  # None: the kind's default


@dataclass(frozen=True, slots=True)
class SubmitResult:
    id: int
    outcome: SubmitOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRecord:
    """A task as stored: the same id from submit to history."""

    id: int
    kind: str
    payload: JSON
    state: TaskState
    pause_reasons: tuple[str, ...]
    priority: int
    group: str | None
    tags: dict[str, str]
    label: str | None
    key: str | None
    parent_id: int | None
    schedule_id: int | None
    retry_of: int | None
    attempt: int
    max_retries: int | None
    error: str | None
    traceback: str | None
    result: JSON
    progress: float | None
    progress_message: str | None
    bytes_done: int | None
    bytes_total: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime | None
    duration: float | None
    io: IoCounts
    speed: float | None
    eta: float | None
    timeout: float | None = None
    ttl: float | None = None
    resume_data: JSON = None
    wait_reason: str | None = None
    effective_priority: int | None = None  # active tasks: the priority dispatch uses (aging)
    preempted_by: int | None = None  # a preempted task: the task it made room for

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def name(self) -> str:
        return self.label or self.kind


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A transition or a change. `seq` is None for (unpersisted) progress events."""

    seq: int | None
    at: datetime
    kind: EventKind
    task_id: int | None = None
    schedule_id: int | None = None
    scope: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class ChildOutcome(NamedTuple):
    """How one child of a parent ended, as finalize sees it: (id, state, result, error)."""

    id: int
    state: TaskState
    result: JSON
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningTask:
    id: int
    kind: str
    label: str | None
    priority: int
    group: str | None
    started_at: datetime
    progress: float | None
    progress_message: str | None
    bytes_done: int | None
    bytes_total: int | None
    speed: float | None
    eta: float | None
    interrupting: str | None  # why it is being stopped, if it is


@dataclass(frozen=True, slots=True, kw_only=True)
class BandwidthStatus:
    """The global bandwidth limit in force and the settings it comes from."""

    limit: float | None  # bytes/s now; None: unlimited
    source: str  # "limit", "schedule", or "until HH:MM" (a temporary override)
    base: float | None
    override: float | None
    override_until: datetime | None
    schedule: tuple[Any, ...]  # core.bandwidth.BandwidthWindow
    tz: str | None
    waiting: int  # handlers waiting for bandwidth now


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupInfo:
    name: str
    limit: int | None
    paused: bool
    paused_until: datetime | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    running: tuple[RunningTask, ...]
    counts: dict[str, int]
    max_concurrency: int
    held: bool
    paused_all: bool
    groups: tuple[GroupInfo, ...]
    waiting: dict[int, str]  # ready task id -> why it is not running (ready tasks only)
    pressure: float = 0.0
    pressure_source: str | None = None
    preempted: dict[int, int] = field(default_factory=dict)  # paused victim -> the task it made room for
    rate_limits: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # scope -> rate, burst
    io: dict[str, dict[str, float]] = field(default_factory=dict)  # per resource: measured, used, capacity
    bandwidth: BandwidthStatus | None = None
    group_shares: dict[str, dict[str, float]] = field(default_factory=dict)  # weight, min_slots, share


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """What crash recovery did when the database was opened."""

    resumed: int = 0  # running tasks put back with their checkpoint
    restarted: int = 0  # running tasks put back without a checkpoint
    failed: int = 0  # tasks that hit the crash guard
    finalized: int = 0  # waiting parents whose children had all ended

    @property
    def total(self) -> int:
        return self.resumed + self.restarted + self.failed + self.finalized


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine:
    id: int
    task_id: int
    at: datetime
    level: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KindInfo:
    kind: str
    schema: dict[str, Any] | None
    description: str | None
    priority: int
    group: str | None
    retry: RetryPolicy
    timeout: float | None
    ttl: float | None
    io: IoBudget | None
    run_in: RunIn
    fail_fast: bool = True  # the default for its tasks' fail_fast


@dataclass(frozen=True, slots=True, kw_only=True)
class KindStats:
    kind: str
    count: int
    completed: int
    failed: int
    mean_duration: float | None
    failure_rate: float | None
    io_rates: dict[str, float]  # mean bytes/s while running: read, written, sent, received
