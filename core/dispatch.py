"""In-memory view of active tasks and the ready queue that dispatch picks from.

The database is the record; this mirror holds only what dispatch needs, so choosing the
next task never scans the backlog. Ready tasks live in lanes (one heap per group and
kind): every gate this engine has decides per lane, so a refused lane is skipped whole
and never blocks the tasks behind it (no head-of-line blocking)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from core.timers import TimerHandle

if TYPE_CHECKING:
    from core.config import Aging
    from core.scheduler import _Run

LaneKey = tuple[str | None, str, tuple[tuple[str, float], ...] | None]  # group, kind, IO budget


class MirrorTask:
    """Dispatch fields of one active task (the row holds the rest)."""

    __slots__ = (
        "attempt",
        "blockers",
        "children",
        "dep_policy",
        "eff",
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
        "wait_from",
        "waited",
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
        self.eff = priority  # effective priority: the stored one, improved by aging
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
        self.wait_from: float | None = None  # aging: since when it waits ready
        self.waited = 0.0  # aging: seconds it waited ready before that
        self.run: _Run | None = None
        self.timer: TimerHandle | None = None
        self.ttl_timer: TimerHandle | None = None

    @property
    def lane(self) -> LaneKey:
        return (self.group, self.kind, self.io)

    @property
    def order(self) -> tuple[int, float, int]:
        return (self.eff, self.pos, self.id)

    def __repr__(self) -> str:
        return f"<task {self.id} {self.kind} {self.state} p{self.priority}>"


_Entry = tuple[int, float, int, int, MirrorTask]  # eff, pos, id, ver, task
_Head = tuple[int, float, int, int, LaneKey]  # a lane head in the index: eff, pos, id, ver, lane
Park = tuple[Any, ...]  # why a lane waits: ("group", g), ("rate",), ("pressure",), ("io", r, need)
_ANY = object()


class ReadyQueue:
    """Ready tasks by lane, each lane a heap in dispatch order (effective priority, queue
    position), and an index of the lane heads in the same order.

    A lane whose head a gate refuses is parked under that gate (every gate decides per
    lane) and leaves the index, so dispatch never looks at it again until the gate may
    have opened: the engine unparks a group's lanes when a slot of that group frees,
    rate-limited lanes when a token comes due, IO-parked lanes whose need fits the new
    headroom (they are kept by need), pressure-parked lanes when pressure changes. A new,
    more urgent head unparks its lane too. Finding the next task to start therefore costs
    what is examined, never the backlog or the number of lanes.

    With aging, a task's effective priority improves while it waits: the queue keeps a
    heap of when each one next improves and re-ranks it then (`promote`)."""

    def __init__(self, aging: Aging | None = None, now: Callable[[], float] | None = None) -> None:
        self._lanes: dict[LaneKey, list[_Entry]] = {}
        self.count = 0
        self.by_group: dict[str | None, int] = {}  # ready tasks per group (fair shares)
        self._seq = itertools.count(1)  # entries never tie, so tasks are never compared
        self._aging = aging
        self._now = now
        self._promotions: list[tuple[float, int, MirrorTask]] = []  # when, ver, task
        self._entries = 0  # heap entries in all lanes, stale ones included
        self._index: list[_Head] = []  # lane heads (stale entries are skipped)
        self._indexed: dict[LaneKey, int] = {}  # lane -> ver of the head it has in the index
        self._parked: dict[Park, set[LaneKey]] = {}
        self._parked_io: dict[str, list[tuple[float, int, LaneKey]]] = {}  # resource -> (need, seq, lane)
        self._parked_by: dict[LaneKey, Park] = {}

    # -- queueing ----------------------------------------------------------------------------

    def push(self, t: MirrorTask) -> None:
        """Queue `t`, or re-rank it if it is queued (its priority or position changed)."""
        t.ver = next(self._seq)
        if not t.in_ready:
            t.in_ready = True
            self.count += 1
            self.by_group[t.group] = self.by_group.get(t.group, 0) + 1
            if self._aging is not None:
                t.wait_from = self._now()  # type: ignore[misc]
        if self._aging is not None and t.priority > self._aging.ceiling:
            now = self._now()  # type: ignore[misc]
            waited = t.waited + now - (t.wait_from if t.wait_from is not None else now)
            t.eff, at = self._aging.rank(t.priority, waited)
            if at is not None:
                heapq.heappush(self._promotions, (now + at - waited, t.ver, t))
        else:
            t.eff = t.priority
        key = t.lane
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = []
        entry = (t.eff, t.pos, t.id, t.ver, t)
        heapq.heappush(lane, entry)
        self._entries += 1
        if lane[0] is entry:  # a new head: the lane's standing may have changed
            self._parked_by.pop(key, None)  # (its entry in a parked set or heap goes stale)
            self._index_head(key)
        if self._entries > 2 * self.count + 4096:
            self._compact()

    def push_new(self, tasks: Sequence[MirrorTask]) -> None:
        """Queue tasks that are not queued yet and share one lane and priority (a run of
        submit_many): `push` for each, without its per-task checks."""
        if not tasks:
            return
        if self._aging is not None:
            for t in tasks:
                self.push(t)
            return
        key = tasks[0].lane
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = []
        head = lane[0] if lane else None
        seq, heappush = self._seq, heapq.heappush
        for t in tasks:
            t.ver = ver = next(seq)
            t.in_ready = True
            t.eff = eff = t.priority
            heappush(lane, (eff, t.pos, t.id, ver, t))
        n = len(tasks)
        self.count += n
        group = tasks[0].group
        self.by_group[group] = self.by_group.get(group, 0) + n
        self._entries += n
        if lane[0] is not head:
            self._parked_by.pop(key, None)
            self._index_head(key)
        if self._entries > 2 * self.count + 4096:
            self._compact()

    def _leave(self, t: MirrorTask) -> None:
        t.in_ready = False
        self.count -= 1
        n = self.by_group[t.group] - 1
        if n:
            self.by_group[t.group] = n
        else:
            del self.by_group[t.group]
        if t.wait_from is not None:
            t.waited += self._now() - t.wait_from  # type: ignore[misc]
            t.wait_from = None

    def discard(self, t: MirrorTask) -> None:
        """Take `t` out (lazily: its heap entry goes stale)."""
        if t.in_ready:
            self._leave(t)
            t.ver = 0

    def _head(self, key: LaneKey, lane: list[_Entry]) -> MirrorTask | None:
        while lane:
            entry = lane[0]
            t = entry[4]
            if entry[3] == t.ver and t.in_ready:
                return t
            heapq.heappop(lane)
            self._entries -= 1
        del self._lanes[key]
        return None

    def _index_head(self, key: LaneKey) -> None:
        """Put a lane's current head in the index (unless the lane is parked)."""
        if key in self._parked_by:
            return
        lane = self._lanes.get(key)
        t = self._head(key, lane) if lane is not None else None
        if t is None:
            self._indexed.pop(key, None)
        elif self._indexed.get(key) != t.ver:
            self._indexed[key] = t.ver
            heapq.heappush(self._index, (t.eff, t.pos, t.id, t.ver, key))

    def _compact(self) -> None:
        """Drop stale entries (re-ranked or removed tasks) once they outnumber live ones, so
        memory follows the queue, not its history of moves and promotions."""
        for key, lane in list(self._lanes.items()):
            live = [e for e in lane if e[3] == e[4].ver and e[4].in_ready]
            if live:
                heapq.heapify(live)
                self._lanes[key] = live
            else:
                del self._lanes[key]
        self._entries = sum(len(lane) for lane in self._lanes.values())
        self._promotions = [e for e in self._promotions if e[1] == e[2].ver and e[2].in_ready]
        heapq.heapify(self._promotions)
        self._index = [h for h in self._index if self._indexed.get(h[4]) == h[3]]
        heapq.heapify(self._index)
        for key in [k for k in self._parked_by if k not in self._lanes]:
            del self._parked_by[key]

    # -- choosing ------------------------------------------------------------------------------

    def pop(
        self,
        admit: Callable[[MirrorTask], Park | None],
        *,
        max_eff: int | None = None,
        group: Any = _ANY,
    ) -> MirrorTask | None:
        """The most urgent ready task that `admit` lets start (it returns None) — of
        effective priority <= `max_eff` and of `group` when given — removed from the queue.
        A lane whose head is refused is parked under the reason `admit` returns."""
        index = self._index
        aside: list[_Head] = []
        found: MirrorTask | None = None
        while index:
            head = index[0]
            if max_eff is not None and head[0] > max_eff:
                break
            heapq.heappop(index)
            key, ver = head[4], head[3]
            if self._indexed.get(key) != ver:
                continue  # stale: the lane has a newer head in the index, or is parked
            lane = self._lanes.get(key)
            t = self._head(key, lane) if lane is not None else None
            if t is None or t.ver != ver:  # its head left or changed: index the new one
                del self._indexed[key]
                self._index_head(key)
                continue
            if group is not _ANY and t.group != group:
                aside.append(head)
                continue
            park = admit(t)
            del self._indexed[key]
            if park is None:
                heapq.heappop(lane)  # type: ignore[arg-type]
                self._entries -= 1
                self._leave(t)
                self._index_head(key)
                found = t
                break
            self._park(key, park)
        for head in aside:
            heapq.heappush(index, head)
        return found

    def _park(self, key: LaneKey, park: Park) -> None:
        self._parked_by[key] = park
        if park[0] == "io":
            heapq.heappush(self._parked_io.setdefault(park[1], []), (park[2], next(self._seq), key))
        else:
            self._parked.setdefault(park, set()).add(key)

    def unpark(self, park: Park) -> None:
        """The gate `park` may have opened: its lanes go back to the index."""
        for key in self._parked.pop(park, ()):
            if self._parked_by.get(key) == park:
                del self._parked_by[key]
                self._index_head(key)

    def unpark_io(self, headroom: Callable[[str], float]) -> None:
        """IO headroom grew: lanes whose need fits it (per resource) go back to the index."""
        for resource, heap in self._parked_io.items():
            room = headroom(resource)
            while heap and heap[0][0] <= room:
                need, _, key = heapq.heappop(heap)
                if self._parked_by.get(key) == ("io", resource, need):
                    del self._parked_by[key]
                    self._index_head(key)

    @property
    def parked(self) -> int:
        return len(self._parked_by)

    # -- looking -------------------------------------------------------------------------------

    def urgent_heads(self, max_eff: int) -> list[MirrorTask]:
        """Lane heads of effective priority <= `max_eff`: those in the index (a best-first
        walk, so only the urgent part is looked at) and those parked by a group limit."""
        out: list[MirrorTask] = []
        index = self._index
        frontier: list[tuple[_Head, int]] = [(index[0], 0)] if index else []
        while frontier:
            head, i = heapq.heappop(frontier)
            if head[0] > max_eff:
                break
            key = head[4]
            lane = self._lanes.get(key)
            if self._indexed.get(key) == head[3] and lane and lane[0][3] == head[3] and lane[0][4].in_ready:
                out.append(lane[0][4])
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(index):
                    heapq.heappush(frontier, (index[child], child))
        for park, keys in self._parked.items():
            if park[0] != "group":
                continue
            for key in keys:
                lane = self._lanes.get(key)
                t = self._head(key, lane) if lane is not None and self._parked_by.get(key) == park else None
                if t is not None and t.eff <= max_eff:
                    out.append(t)
        return out

    def first(self, key: LaneKey, n: int, max_eff: int, budget: int) -> list[MirrorTask]:
        """Up to `n` queued tasks of a lane with effective priority <= `max_eff`, in
        dispatch order, looking at no more than `budget` heap entries: a best-first walk
        down the heap, so the cost follows `n`, not the lane's length."""
        lane = self._lanes.get(key)
        out: list[MirrorTask] = []
        if not lane:
            return out
        frontier: list[tuple[_Entry, int]] = [(lane[0], 0)]
        while frontier and len(out) < n and budget > 0:
            entry, i = heapq.heappop(frontier)
            budget -= 1
            if entry[0] > max_eff:
                break
            t = entry[4]
            if entry[3] == t.ver and t.in_ready:
                out.append(t)
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(lane):
                    heapq.heappush(frontier, (lane[child], child))
        return out

    def __iter__(self) -> Iterator[MirrorTask]:
        for lane in list(self._lanes.values()):
            for entry in lane:
                t = entry[4]
                if entry[3] == t.ver and t.in_ready:
                    yield t

    @property
    def next_promotion(self) -> float | None:
        """When a queued task's effective priority next improves (aging), if ever."""
        heap = self._promotions
        while heap and (heap[0][2].ver != heap[0][1] or not heap[0][2].in_ready):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def promote(self, now: float) -> int:
        """Re-rank the tasks whose effective priority has improved by `now`."""
        n = 0
        while self._promotions and self._promotions[0][0] <= now:  # push may compact the heap
            _, ver, t = heapq.heappop(self._promotions)
            if t.ver == ver and t.in_ready:
                self.push(t)
                n += 1
        return n
