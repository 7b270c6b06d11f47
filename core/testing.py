"""Test helpers that ship with core: a clock that only moves when told to."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

from core.clock import require_aware


class FakeClock:
    """A Clock whose time moves only through `advance` and `advance_to`.

    Sleepers whose deadline is reached are woken (their futures resolved); the caller
    then awaits something (an event, `engine.wait`) to let them run.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._now = require_aware("start", start)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._counter), fut))
        await fut

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"seconds: must be >= 0, got {seconds!r}")
        self.advance_to(self._now + timedelta(seconds=seconds))

    def advance_to(self, when: datetime) -> None:
        """Move to `when` (never backwards; use `set` for a clock jump) and wake sleepers."""
        require_aware("when", when)
        if when < self._now:
            raise ValueError(f"when: {when.isoformat()} is before now; use set() to jump back")
        self._now = when
        self._wake()

    def set(self, when: datetime) -> None:
        """Jump to any time, backwards included, as a changed system clock would."""
        self._now = require_aware("when", when)
        self._wake()

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
