"""Wall time for the engine: every task timer (run_at, backoff, timeouts, TTL, grace,
group pauses) reads and sleeps through a Clock, so tests can inject a fake one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

# Loop timers follow the monotonic clock, which stops while a laptop sleeps and ignores
# wall-clock changes; re-reading wall time this often bounds how late a timer can be.
WALL_RECHECK_SECONDS = 60.0


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once `now() >= when` (at once if it already is)."""
        ...


class SystemClock:
    """The real clock: UTC wall time, sleeps re-checked at least once a minute."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, WALL_RECHECK_SECONDS))


def require_aware(name: str, when: datetime) -> datetime:
    if not isinstance(when, datetime):
        raise ValueError(f"{name}: must be a datetime, got {when!r}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware, got naive {when.isoformat()}")
    return when


def to_ts(when: datetime) -> float:
    return when.timestamp()


def from_ts(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)
