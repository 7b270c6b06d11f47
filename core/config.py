"""Engine settings and the constants they are checked against."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.clock import Clock
from core.errors import (
    InvalidArgument,
)
from core.types import (
    PauseReason,
    Priority,
)
from core.validation import check_io_capacity, check_priority, check_seconds

logger = logging.getLogger(__name__)


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

_OK, _INTERRUPTED, _PERMANENT, _ERROR = range(4)  # how a run ended, before the decision
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
        "set_rate_limit",
        "set_io_capacity",
        "set_group_weight",
        "set_group_min_slots",
        "set_bandwidth_limit",
        "set_bandwidth_schedule",
        "hold",
        "release",
        "interrupt",
        "cancel_where",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Aging:
    """Opt-in priority aging: a task that has waited ready for longer than `grace` seconds
    counts `step` more urgent for every further `interval` seconds, never past `ceiling`.
    A task already at or above the ceiling is left as it is; time spent paused, scheduled
    for later or blocked does not count. The stored priority never changes."""

    grace: float = 300.0
    interval: float = 60.0
    step: int = 1
    ceiling: int = Priority.HIGH

    def __post_init__(self) -> None:
        try:
            check_seconds("grace", self.grace, positive=False)
            check_seconds("interval", self.interval, positive=True)
            check_priority(self.ceiling, "ceiling")
        except ValueError as e:
            raise InvalidArgument(f"aging.{e}") from e
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 1:
            raise InvalidArgument(f"aging.step: must be an int >= 1, got {self.step!r}")

    def rank(self, priority: int, waited: float) -> tuple[int, float | None]:
        """The effective priority after `waited` seconds, and the seconds of waiting at
        which it improves next (None: it no longer does)."""
        if priority <= self.ceiling:
            return priority, None
        steps = max(0, int((waited - self.grace) // self.interval))
        effective = max(self.ceiling, priority - steps * self.step)
        if effective == self.ceiling:
            return effective, None
        return effective, self.grace + (steps + 1) * self.interval


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
    aging: Aging | None = None
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
            try:
                check_priority(self.preempt_at, "preempt_at")
            except ValueError as e:
                raise InvalidArgument(str(e)) from e
        for name in ("preempt_grace", "cleanup_timeout"):
            try:
                check_seconds(name, getattr(self, name), positive=False)
            except ValueError as e:
                raise InvalidArgument(str(e)) from e
        if self.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise InvalidArgument(f"synchronous: must be NORMAL, FULL or EXTRA, got {self.synchronous!r}")
        if self.io_capacity is not None:
            if not isinstance(self.io_capacity, Mapping):
                raise InvalidArgument(f"io_capacity: must be a dict of bytes/s, got {self.io_capacity!r}")
            for resource, bps in self.io_capacity.items():
                try:
                    check_io_capacity(resource, bps)
                except InvalidArgument as e:
                    raise InvalidArgument(f"io_capacity[{resource!r}]: {str(e).partition(': ')[2]}") from e
        if not 0 < self.io_threshold <= 1:
            raise InvalidArgument(f"io_threshold: must be in (0, 1], got {self.io_threshold!r}")
        if self.aging is not None and not isinstance(self.aging, Aging):
            raise InvalidArgument(f"aging: must be an Aging or None, got {self.aging!r}")
        if self.process_start_method not in ("spawn", "forkserver"):
            raise InvalidArgument("process_start_method: must be 'spawn' or 'forkserver' (never fork)")


@dataclass(slots=True)
class _Settings:
    max_concurrency: int
    retention_keep: int | None
    retention_days: float | None
    paused_all: bool = False
    group_limits: dict[str, int] = field(default_factory=dict)
    paused_groups: dict[str, float | None] = field(default_factory=dict)  # name -> until
    rate_limits: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # scope -> rate, burst
    group_shares: dict[str, tuple[float, int]] = field(default_factory=dict)  # name -> weight, min slots
