"""Fan-out of events to subscribers: lifecycle events in seq order, never dropped (a
lagging subscriber pages them back in from the log), progress coalesced per task."""

from __future__ import annotations

import asyncio
import bisect
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from core.types import Event, EventKind

RING_SIZE = 4096
PAGE = 1000
_ENDS_PROGRESS = frozenset(
    {EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED, EventKind.EXPIRED,
     EventKind.SUPERSEDED, EventKind.PAUSED, EventKind.RETRYING, EventKind.INTERRUPTED,
     EventKind.DEPENDENCY_FAILED, EventKind.WAITING}
)  # fmt: skip


class EventBus:
    def __init__(self, read_after: Callable[[int, int], list[Event]], last_seq: int) -> None:
        self._read_after = read_after  # (seq, limit) -> persisted events with a larger seq
        self._ring: list[Event] = []
        self._ring_seqs: list[int] = []
        self.last_seq = last_seq
        self._subscribers: weakref.WeakSet[_Subscriber] = weakref.WeakSet()
        self._closed = False

    def publish(self, events: list[Event]) -> None:
        """Persisted events, committed, in increasing seq order."""
        for ev in events:
            assert ev.seq is not None
            if ev.seq <= self.last_seq:
                continue
            self._ring.append(ev)
            self._ring_seqs.append(ev.seq)
            self.last_seq = ev.seq
            if ev.task_id is not None and ev.kind in _ENDS_PROGRESS and len(self._subscribers):
                for sub in self._subscribers:
                    sub.progress.pop(ev.task_id, None)
        if len(self._ring) > 2 * RING_SIZE:
            del self._ring[:-RING_SIZE]
            del self._ring_seqs[:-RING_SIZE]
        if len(self._subscribers):
            for sub in self._subscribers:
                sub.wake()

    def publish_progress(self, event: Event) -> None:
        for sub in self._subscribers:
            if event.task_id is not None:
                sub.progress.pop(event.task_id, None)  # keep the dict in arrival order
                sub.progress[event.task_id] = event
            sub.wake()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _after(self, seq: int) -> list[Event]:
        """Lifecycle events after `seq`, from the ring or, if it has moved on, the log."""
        if self._ring_seqs and self._ring_seqs[0] <= seq + 1:
            i = bisect.bisect_right(self._ring_seqs, seq)
            return self._ring[i : i + PAGE]
        return self._read_after(seq, PAGE)

    def subscribe(self, since: int | None = None) -> AsyncIterator[Event]:
        sub = _Subscriber(self, self.last_seq if since is None else max(0, since))
        self._subscribers.add(sub)
        return sub

    def close(self) -> None:
        self._closed = True
        for sub in list(self._subscribers):
            sub.wake()


class _Subscriber:
    def __init__(self, bus: EventBus, cursor: int) -> None:
        self._bus = bus
        self.cursor = cursor
        self.progress: dict[int, Event] = {}
        self._buffer: deque[Event] = deque()
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    def __aiter__(self) -> _Subscriber:
        return self

    async def __anext__(self) -> Event:
        bus = self._bus
        while True:
            if self._buffer:
                ev = self._buffer.popleft()
                self.cursor = ev.seq if ev.seq is not None else self.cursor
                return ev
            if self.cursor < bus.last_seq:
                page = bus._after(self.cursor)
                if page:
                    self._buffer.extend(page)
                    continue
                self.cursor = bus.last_seq  # gap in the log (pruned): nothing more to read
            if self.progress:
                task_id = next(iter(self.progress))
                return self.progress.pop(task_id)
            if bus._closed:
                self.close()
                raise StopAsyncIteration
            self._event.clear()
            await self._event.wait()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._bus._subscribers.discard(self)
        self.progress.clear()

    def __repr__(self) -> str:
        return f"<subscriber at seq {self.cursor}>"

