"""Fan-out of events to subscribers: lifecycle events in seq order, never dropped (a
lagging subscriber pages them back in from the log), progress coalesced per task.

Committed events arrive as raw rows (see core.store.writer.RawEvent); Event records are
built only for subscribers, so an engine nobody watches pays nothing for them."""

from __future__ import annotations

import asyncio
import bisect
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from core.store.records import event_from_row
from core.types import Event

RING_SIZE = 4096
PAGE = 1000
_ENDS_PROGRESS = frozenset(
    {"completed", "failed", "cancelled", "expired", "superseded", "paused", "retrying",
     "interrupted", "dependency_failed", "waiting"}
)  # fmt: skip

Raw = Sequence[Any]  # seq, at, kind, task_id, schedule_id, scope, data (dict or JSON text)


class EventBus:
    def __init__(self, read_after: Callable[[int, int], list[Raw]], last_seq: int) -> None:
        self._read_after = read_after  # (seq, limit) -> persisted raw events with a larger seq
        self._ring: list[Raw] = []
        self._ring_seqs: list[int] = []
        self.last_seq = last_seq
        self._subscribers: weakref.WeakSet[_Subscriber] = weakref.WeakSet()
        self._closed = False

    def publish(self, events: Sequence[Raw]) -> None:
        """Persisted events, committed, in increasing seq order."""
        if not len(self._subscribers):
            if self._ring:  # nobody kept it continuous: readers go to the log instead
                self._ring.clear()
                self._ring_seqs.clear()
            self.last_seq = max(self.last_seq, events[-1][0])
            return
        subs = list(self._subscribers)
        for ev in events:
            seq = ev[0]
            if seq <= self.last_seq:
                continue
            self._ring.append(ev)
            self._ring_seqs.append(seq)
            self.last_seq = seq
            if ev[3] is not None and ev[2] in _ENDS_PROGRESS:
                for sub in subs:
                    sub.progress.pop(ev[3], None)
        if len(self._ring) > 2 * RING_SIZE:
            del self._ring[:-RING_SIZE]
            del self._ring_seqs[:-RING_SIZE]
        for sub in subs:
            sub.wake()

    def publish_progress(self, event: Event) -> None:
        for sub in self._subscribers:
            if event.task_id is not None:
                sub.progress.pop(event.task_id, None)  # keep the dict in arrival order
                sub.progress[event.task_id] = event
            sub.wake()

    def min_cursor(self) -> int | None:
        """The oldest event seq some subscriber has read up to (None: no subscriber)."""
        cursors = [sub.cursor for sub in self._subscribers]
        return min(cursors) if cursors else None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _after(self, seq: int) -> list[Raw]:
        """Lifecycle events after `seq`, from the ring or, if it does not cover them, the log."""
        seqs = self._ring_seqs
        if seqs and seqs[0] <= seq + 1 and seqs[-1] > seq:
            i = bisect.bisect_right(seqs, seq)
            return self._ring[i : i + PAGE]
        return self._read_after(seq, PAGE)

    def subscribe(self, since: int | None = None) -> AsyncIterator[Event]:
        if not len(self._subscribers):
            self._ring.clear()
            self._ring_seqs.clear()
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
        self._buffer: deque[Raw] = deque()
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    def __aiter__(self) -> _Subscriber:
        return self

    async def __anext__(self) -> Event:
        bus = self._bus
        while True:
            if self._buffer:
                raw = self._buffer.popleft()
                self.cursor = raw[0]
                return event_from_row(raw)
            if self.cursor < bus.last_seq:
                page = bus._after(self.cursor)
                if page:
                    self._buffer.extend(page)
                    continue
                self.cursor = bus.last_seq  # a gap in the log (pruned): nothing more to read
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
