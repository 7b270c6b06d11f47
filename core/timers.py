"""One timer service on the injected clock: a heap of deadlines and a single sleeper."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable

from core.clock import WALL_RECHECK_SECONDS, Clock, SystemClock, from_ts

logger = logging.getLogger(__name__)


class TimerHandle:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """`call_at(ts, fn)` runs `fn` on the loop once the clock reaches `ts` (epoch seconds).

    Only the earliest deadline is slept on, so a thousand delayed tasks cost one sleeper;
    a new earlier deadline restarts that sleeper.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._changed: asyncio.Event | None = None

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(when, callback)
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (when, next(self._counter), handle))
        if (earliest is None or when < earliest) and self._changed is not None:
            self._changed.set()
        return handle

    async def _run_on_loop_timers(self, changed: asyncio.Event) -> None:
        """The real clock: one loop timer for the earliest deadline (no sleeper tasks, and
        as precise as the loop), re-checking wall time at least once a minute."""
        loop = asyncio.get_running_loop()
        wake: asyncio.TimerHandle | None = None
        try:
            while True:
                changed.clear()
                self.fire_due()
                when = self.next_deadline()
                if wake is not None:
                    wake.cancel()
                    wake = None
                if when is not None:
                    delay = max(0.0, when - time.time())
                    wake = loop.call_later(min(delay, WALL_RECHECK_SECONDS), changed.set)
                await changed.wait()
        finally:
            if wake is not None:
                wake.cancel()

    def next_deadline(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def fire_due(self) -> int:
        now = self._clock.now().timestamp()
        fired = 0
        while self._heap and self._heap[0][0] <= now:
            _, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            fired += 1
            try:
                handle.callback()
            except Exception:
                logger.exception("timer callback failed")
        return fired

    async def run(self) -> None:
        """The service loop; runs until cancelled."""
        self._changed = changed = asyncio.Event()
        if type(self._clock) is SystemClock:
            await self._run_on_loop_timers(changed)
        while True:
            changed.clear()
            self.fire_due()
            when = self.next_deadline()
            if when is None:
                await changed.wait()
                continue
            sleeper = asyncio.ensure_future(self._clock.sleep_until(from_ts(when)))  # type: ignore[arg-type]
            waker = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (sleeper, waker):
                    if not f.done():
                        f.cancel()
