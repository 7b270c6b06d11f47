"""One timer service on the injected clock: a heap of deadlines and a single sleeper."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from core.clock import WALL_RECHECK_SECONDS, Clock, SystemClock, from_ts

logger = logging.getLogger(__name__)

# The loop's own timers wake up to a millisecond late: epoll (and the other selectors)
# take whole milliseconds and asyncio rounds the timeout up. The last stretch before a
# deadline is slept by a waker thread instead, which wakes the loop within microseconds.
PRECISE_LEAD = 0.003  # seconds


class TimerHandle:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _PreciseWaker:
    """A thread that sleeps until a monotonic deadline and then calls `wake` on the loop
    (call_soon_threadsafe). It never touches the engine; the loop keeps its own, coarser
    timer for the same deadline, so this only ever makes a wake-up earlier."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self._loop = loop
        self._wake = wake
        self._cond = threading.Condition()
        self._target: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> None:
        with self._cond:
            if self._closed or self._target == deadline:
                return
            self._target = deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taskdeck-timer", daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._target = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._target = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                target = self._target
                if target is None:
                    self._cond.wait()
                    continue
                remaining = target - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._target = None
                try:
                    self._loop.call_soon_threadsafe(self._wake)
                except RuntimeError:  # the loop is closed
                    return


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
        # the real clock: one loop timer (and the waker thread) for the earliest deadline
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_handle: asyncio.TimerHandle | None = None
        self._waker: _PreciseWaker | None = None
        self.after_fire: Callable[[], None] | None = None  # runs after callbacks fired

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(when, callback)
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (when, next(self._counter), handle))
        if earliest is None or when < earliest:
            if self._loop is not None:
                self._rearm()
            elif self._changed is not None:
                self._changed.set()
        return handle

    # -- the real clock: loop timers, no sleeper task -------------------------------------

    def _wake(self) -> None:
        """A loop timer or the waker thread: fire what is due, then arm for the next one."""
        if self._loop is None:
            return
        self.fire_due()
        self._rearm()

    def _rearm(self) -> None:
        """Arm a loop timer for the earliest deadline (re-checking wall time at least once a
        minute) and, once it is near, the waker thread for its exact instant."""
        loop = self._loop
        assert loop is not None
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None
        when = self.next_deadline()
        if when is None:
            if self._waker is not None:
                self._waker.disarm()
            return
        delay = when - time.time()
        if delay > PRECISE_LEAD:  # wake a little early, then let the thread sleep the rest
            self._wake_handle = loop.call_later(min(delay - PRECISE_LEAD, WALL_RECHECK_SECONDS), self._wake)
            return
        self._wake_handle = loop.call_later(max(0.0, delay), self._wake)  # in case
        if delay > 0:
            if self._waker is None:
                self._waker = _PreciseWaker(loop, self._wake)
            self._waker.arm(time.monotonic() + delay)

    async def _run_on_loop_timers(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._wake()
            await self._loop.create_future()  # until cancelled
        finally:
            self._loop = None
            if self._wake_handle is not None:
                self._wake_handle.cancel()
                self._wake_handle = None
            if self._waker is not None:
                self._waker.close()
                self._waker = None

    # -----------------------------------------------------------------------------------

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
        if fired and self.after_fire is not None:
            try:
                self.after_fire()
            except Exception:
                logger.exception("timer after_fire hook failed")
        return fired

    async def run(self) -> None:
        """The service loop; runs until cancelled."""
        if type(self._clock) is SystemClock:
            await self._run_on_loop_timers()
            return
        self._changed = changed = asyncio.Event()
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
