"""In-memory view of active tasks and the ready queue that dispatch picks from.

The database is the record; this mirror holds only what dispatch needs, so choosing the
next task never scans the backlog. Ready tasks live in lanes (one heap per group and
kind): every gate this engine has decides per lane, so a refused lane is skipped whole
and never blocks the tasks behind it (no head-of-line blocking)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from core.timers import TimerHandle

if TYPE_CHECKING:
    from core.scheduler import _Run

LaneKey = tuple[str | None, str, tuple[tuple[str, float], ...] | None]  # group, kind, IO budget


class MirrorTask:
    """Dispatch fields of one active task (the row holds the rest)."""

    __slots__ = (
        "attempt",
        "blockers",
        "children",
        "dep_policy",
        "expires_at",
        "fail_fast",
        "group",
        "id",
        "in_ready",
        "io",
        "kind",
        "label",
        "parent_id",
        "phase",
        "pos",
        "priority",
        "reasons",
        "run",
        "run_at",
        "schedule_id",
        "spawned",
        "started",
        "state",
        "timer",
        "ttl_timer",
        "ver",
    )  # fmt: skip

    def __init__(
        self,
        id: int,
        kind: str,
        priority: int,
        pos: float,
        group: str | None,
        state: str,
        reasons: int,
        run_at: float | None,
        expires_at: float | None,
        parent_id: int | None,
        started: bool,
        label: str | None,
        attempt: int,
        *,
        phase: str | None = None,
        fail_fast: bool = True,
        dep_policy: str = "cancel",
    ) -> None:
        self.id = id
        self.kind = kind
        self.priority = priority
        self.pos = pos
        self.group = group
        self.state = state
        self.reasons = reasons
        self.run_at = run_at
        self.expires_at = expires_at
        self.parent_id = parent_id
        self.started = started
        self.label = label
        self.attempt = attempt
        self.phase = phase  # None: run the handler; "finalize": the children ended
        self.fail_fast = fail_fast
        self.dep_policy = dep_policy  # on_dependency_failure
        self.schedule_id: int | None = None
        self.io: tuple[tuple[str, float], ...] | None = None  # the task's own IO budget
        self.children = 0  # live children
        self.spawned = False  # has had children: its end waits for them
        self.blockers = 0  # unfinished dependencies (while blocked)
        self.ver = 0
        self.in_ready = False
        self.run: _Run | None = None
        self.timer: TimerHandle | None = None
        self.ttl_timer: TimerHandle | None = None

    @property
    def lane(self) -> LaneKey:
        return (self.group, self.kind, self.io)

    @property
    def order(self) -> tuple[int, float, int]:
        return (self.priority, self.pos, self.id)

    def __repr__(self) -> str:
        return f"<task {self.id} {self.kind} {self.state} p{self.priority}>"


_Entry = tuple[int, float, int, int, MirrorTask]  # priority, pos, id, ver, task


class ReadyQueue:
    def __init__(self) -> None:
        self._lanes: dict[LaneKey, list[_Entry]] = {}
        self.count = 0
        self._seq = itertools.count(1)  # entries never tie, so tasks are never compared

    def push(self, t: MirrorTask) -> None:
        t.ver = next(self._seq)
        if not t.in_ready:
            t.in_ready = True
            self.count += 1
        lane = self._lanes.get(t.lane)
        if lane is None:
            lane = self._lanes[t.lane] = []
        heapq.heappush(lane, (t.priority, t.pos, t.id, t.ver, t))

    def discard(self, t: MirrorTask) -> None:
        """Take `t` out (lazily: its heap entry goes stale)."""
        if t.in_ready:
            t.in_ready = False
            t.ver = 0
            self.count -= 1

    def _head(self, key: LaneKey, lane: list[_Entry]) -> MirrorTask | None:
        while lane:
            entry = lane[0]
            t = entry[4]
            if entry[3] == t.ver and t.in_ready:
                return t
            heapq.heappop(lane)
        del self._lanes[key]
        return None

    def pop(self, admit: Callable[[MirrorTask], bool]) -> MirrorTask | None:
        """The most urgent ready task that `admit` accepts, removed from the queue.

        `admit` is asked about lane heads only: a lane whose head is refused is refused
        whole, which holds because every gate decides by group, kind and IO budget (the
        lane), or by priority in a way that refuses a lane's head before its tail."""
        heads: list[tuple[tuple[int, float, int], MirrorTask]] = []
        for key, lane in list(self._lanes.items()):
            t = self._head(key, lane)
            if t is not None:
                heads.append((t.order, t))
        if not heads:
            return None
        if len(heads) > 1:
            heads.sort(key=lambda h: h[0])
        for _, t in heads:
            if admit(t):
                heapq.heappop(self._lanes[t.lane])
                t.in_ready = False
                self.count -= 1
                return t
        return None

    def heads(self) -> Iterator[MirrorTask]:
        for key, lane in list(self._lanes.items()):
            t = self._head(key, lane)
            if t is not None:
                yield t

    def __iter__(self) -> Iterator[MirrorTask]:
        for lane in list(self._lanes.values()):
            for entry in lane:
                t = entry[4]
                if entry[3] == t.ver and t.in_ready:
                    yield t
