"""Resource-aware dispatch: preemption, rate limits, IO capacities, pressure, bandwidth,
fair shares between groups and priority aging.

Preemption (SPEC §4.2): when ready work at or above `preempt_at` cannot start for lack of a
slot, exactly as many running tasks as it needs are interrupted — the least urgent first,
ties the most recently started, and only tasks strictly less urgent than the newcomer (for
a group's slots, only tasks of that group). A victim is paused ("preempted"), keeps its
attempt and checkpoint, and stays queued in its place: it starts again when no more urgent
work is waiting for the slot.

The sampler (SPEC §4.3) reads system throughput once a second on the engine's clock;
pressure sources are read with it. Both can be injected for tests."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.bandwidth import BandwidthPolicy, BandwidthWindow, ByteBucket, check_bps
from core.config import MAX_CONCURRENCY_LIMIT
from core.control import EngineControl
from core.dispatch import MirrorTask
from core.errors import Interrupted, InvalidArgument, Permanent
from core.resources import RESOURCES, SAMPLE_SECONDS, TokenBucket, human_rate
from core.scheduler import _PRESSURE, _RATE, _Run
from core.store.transitions import settings_put
from core.types import BandwidthStatus, EventKind, PauseReason
from core.validation import (
    check_group_name,
    check_io_capacity,
    check_min_slots,
    check_rate_limit,
    check_weight,
)

# run.io order (read, written, sent, received) as IO resources
_IO_RESOURCES = ("disk_read", "disk_write", "net_tx", "net_rx")
BANDWIDTH_RECHECK = 3600.0  # a bandwidth schedule is re-read at least hourly (DST, clock jumps)


def _group_order(g: str | None) -> tuple[bool, str]:
    return (g is not None, g or "")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


logger = logging.getLogger(__name__)


class ResourceEngine(EngineControl):
    """Preemption, and the gates dispatch checks besides free slots."""

    # -- preemption ------------------------------------------------------------------------

    def _preempt(self) -> None:
        preempt_at = self.config.preempt_at
        assert preempt_at is not None
        limit = self._settings.max_concurrency
        # Ready tasks urgent enough to preempt, most urgent first: those that pass every
        # gate wait for a global slot; those only their group's limit refuses wait for a
        # slot of their group. A lane is refused or admitted whole, so its head decides
        # for the urgent tasks behind it.
        urgent: list[tuple[tuple[int, float, int], MirrorTask, bool]] = []
        for head in self._ready.urgent_heads(preempt_at):
            park = self._admit(head)
            group_bound = park is not None and park[0] == "group"
            if park is not None and not group_bound:
                continue  # refused by something preemption cannot help (rate, IO, pressure)
            for t in self._ready.first(head.lane, limit, preempt_at, budget=4 * limit):
                if t.priority <= preempt_at:
                    urgent.append((t.order, t, group_bound))
        if not urgent:
            return
        urgent.sort(key=lambda u: u[0])
        freeing = [r for r in self._running.values() if r.interrupt == "preempt" and not r.finished]
        for _, t, group_bound in urgent[:limit]:
            # A slot already being freed for this kind of wait serves this task.
            same = [r for r in freeing if not group_bound or r.task.group == t.group]
            if same:
                freeing.remove(same[0])
                continue
            victim = self._victim(t, group_bound)
            if victim is None:
                continue
            self._preempted_by[victim.task.id] = t.id
            victim.task.reasons |= PauseReason.PREEMPTED
            self._interrupt(victim, "preempt")
            logger.info("task %s preempted by task %s", victim.task.id, t.id)

    def _victim(self, t: MirrorTask, group_bound: bool) -> _Run | None:
        """The least urgent running task strictly less urgent than `t` (ties: the most
        recently started: started later, or later in the same dispatch pass), of t's group
        when only the group's limit stands in the way."""
        best: _Run | None = None
        for run in self._running.values():
            v = run.task
            if run.interrupt is not None or run.finished or v.priority <= t.priority:
                continue
            if group_bound and v.group != t.group:
                continue
            if best is None or (v.priority, run.started_at, run.seq) > (
                best.task.priority,
                best.started_at,
                best.seq,
            ):
                best = run
        return best

    # -- sampling --------------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        while True:
            await self._sleep(SAMPLE_SECONDS)
            self._sample()

    def _sample(self) -> None:
        """One sample of throughput and pressure; dispatch again if either may let work in."""
        try:
            rates = self._sampler()
        except Exception:
            logger.exception("the resource sampler failed")
            rates = {}
        self._io.add_sample(rates)
        self._measure_runs()
        before = self._pressure
        self._pressure, self._pressure_source = 0.0, None
        for name, source in self._pressure_sources.items():
            try:
                value = float(source())
            except Exception:
                logger.exception("pressure source %s failed", name)
                continue
            if math.isfinite(value) and value > self._pressure:
                self._pressure, self._pressure_source = min(1.0, max(0.0, value)), name
        if before != self._pressure:
            self._ready.unpark(_PRESSURE)
        self._io_freed()
        if self._ready.count:
            self._request_tick()

    def _measure_runs(self) -> None:
        """What running tasks were measured doing since the last sample (ctx.record_io),
        beyond their budgets, counts toward usage too."""
        extra = dict.fromkeys(RESOURCES, 0.0)
        users = dict.fromkeys(RESOURCES, 0)
        for run in self._running.values():
            io = run.io
            mark, run.io_mark = run.io_mark, (io[0], io[1], io[2], io[3])
            for i, r in enumerate(_IO_RESOURCES):
                rate = (io[i] - mark[i]) / SAMPLE_SECONDS
                if rate <= 0:
                    continue
                budget = run.budget.get(r, 0.0)
                if rate > budget:
                    extra[r] += rate - budget
                    if not budget:
                        users[r] += 1
        self._io.measured_runs, self._io.measured_users = extra, users

    def _learn_kind_io(self, run: _Run, now: float) -> None:
        """Keep each kind's mean IO rates (what `stats(kind)` reports) for tasks that
        declare no budget."""
        seconds = now - run.started_at
        if seconds <= 0 or not any(run.io):
            return
        acc = self._kind_io_acc.setdefault(run.task.kind, [0.0, 0.0, 0.0, 0.0, 0.0])
        acc[0] += seconds
        for i in range(4):
            acc[i + 1] += run.io[i]
        self._kind_io[run.task.kind] = {
            r: acc[i + 1] / acc[0] for i, r in enumerate(_IO_RESOURCES) if acc[i + 1]
        }

    def _load_kind_io(self) -> None:
        rows = self._db.read(
            lambda c: c.execute(
                "SELECT kind, sum(run_seconds), "
                "sum(io_read), sum(io_written), sum(io_sent), sum(io_received) "
                "FROM tasks WHERE finished_at IS NOT NULL AND run_seconds > 0 "
                "AND io_read + io_written + io_sent + io_received > 0 GROUP BY kind"
            ).fetchall()
        )
        for kind, seconds, *io in rows:
            acc = [float(seconds), *(float(x or 0) for x in io)]
            self._kind_io_acc[kind] = acc
            self._kind_io[kind] = {r: acc[i + 1] / acc[0] for i, r in enumerate(_IO_RESOURCES) if acc[i + 1]}

    # -- fair shares -----------------------------------------------------------------------

    def _dispatch_shares(self, now: float) -> None:
        """Urgent work first (at or above `preempt_at`, by effective priority), then each
        group up to its share; the caller fills what is left by priority."""
        limit = self._settings.max_concurrency
        urgent = self.config.preempt_at if self.config.preempt_at is not None else 64
        while len(self._running) < limit:
            t = self._ready.pop(self._admit, max_eff=urgent)
            if t is None:
                break
            self._start(t, now)
        for g, share in self._allocate().items():
            while len(self._running) < limit and self._group_running.get(g, 0) < share:
                t = self._ready.pop(self._admit, group=g)
                if t is None:
                    break
                self._start(t, now)

    def _allocate(self) -> dict[str | None, int]:
        """Slots per group with demand (running or ready tasks): first each group's minimum,
        then the rest in proportion to the weights (default 1, tasks without a group count
        as one group), never more than a group can use; remainders go to the largest
        fractions (ties: by name)."""
        shares = self._settings.group_shares
        demand: dict[str | None, int] = {}
        for g in set(self._group_running) | set(self._ready.by_group):
            if g is not None and g in self._settings.paused_groups:
                continue
            n = self._group_running.get(g, 0) + self._ready.by_group.get(g, 0)
            cap = self._settings.group_limits.get(g) if g is not None else None
            demand[g] = min(n, cap) if cap is not None else n
        alloc = dict.fromkeys(demand, 0)
        left = self._settings.max_concurrency
        for g in sorted(demand, key=_group_order):
            floor = min(shares[g][1], demand[g], left) if g in shares else 0
            alloc[g] += floor
            left -= floor
        active = {g for g in demand if alloc[g] < demand[g]}
        while left > 0 and active:
            weight = {g: shares[g][0] if g in shares else 1.0 for g in active}
            total = sum(weight.values())
            ideal = {g: left * weight[g] / total for g in active}
            sated = [g for g in active if demand[g] - alloc[g] <= ideal[g]]
            if sated:  # these need less than their share: give it, split the rest again
                for g in sated:
                    left -= demand[g] - alloc[g]
                    alloc[g] = demand[g]
                    active.discard(g)
                continue
            whole = {g: int(ideal[g]) for g in active}
            for g, n in whole.items():
                alloc[g] += n
                left -= n
            by_fraction = sorted(active, key=lambda g: (-(ideal[g] - whole[g]), _group_order(g)))
            for g in by_fraction[:left]:
                alloc[g] += 1
            left = 0
        return alloc

    async def set_group_weight(self, group: str, weight: float | None) -> None:
        """Give `group` a weight in the fair split of slots between busy groups (None:
        back to the default, 1). Slots are shared by weight only once a weight or a
        minimum is set for some group; until then dispatch is by priority alone."""
        self._check_open()
        check_group_name(group)
        weight = check_weight(weight)
        _, slots = self._settings.group_shares.get(group, (1.0, 0))
        await self._set_share(group, 1.0 if weight is None else float(weight), slots, {"weight": weight})

    async def set_group_min_slots(self, group: str, n: int | None) -> None:
        """Reserve up to `n` slots for `group` whenever it has work (None or 0: none)."""
        self._check_open()
        check_group_name(group)
        n = check_min_slots(n, MAX_CONCURRENCY_LIMIT)
        weight, _ = self._settings.group_shares.get(group, (1.0, 0))
        await self._set_share(group, weight, n or 0, {"min_slots": n})

    async def _set_share(self, group: str, weight: float, slots: int, data: dict[str, Any]) -> None:
        shares = self._settings.group_shares
        if weight == 1.0 and slots == 0:
            shares.pop(group, None)
        else:
            shares[group] = (weight, slots)
        stored = {g: list(v) for g, v in shares.items()}
        await self._emit(EventKind.LIMITS_CHANGED, {"group": group, **data}, scope=group,
                         extra=lambda conn: settings_put(conn, "group_shares", stored))  # fmt: skip
        self._request_tick()

    def group_shares(self) -> dict[str, dict[str, float]]:
        """Per group with a weight or minimum: weight, min_slots, and the slots it would
        get now (`share`) next to the slots it holds (`running`)."""
        alloc = self._allocate() if self._settings.group_shares else {}
        names = set(self._settings.group_shares) | {g for g in alloc if g is not None}
        out: dict[str, dict[str, float]] = {}
        for g in sorted(names):
            weight, slots = self._settings.group_shares.get(g, (1.0, 0))
            out[g] = {"weight": weight, "min_slots": slots, "share": alloc.get(g, 0),
                      "running": self._group_running.get(g, 0)}  # fmt: skip
        return out

    # -- aging -----------------------------------------------------------------------------

    def _schedule_promotion(self) -> None:
        when = self._ready.next_promotion
        if when is None:
            return
        h = self._promotion_timer
        if h is not None and not h.cancelled and h.when <= when:
            return
        if h is not None:
            h.cancel()
        self._promotion_timer = self._timers.call_at(when, self._promote)

    def _promote(self) -> None:
        self._promotion_timer = None
        if self._ready.promote(self._now()):
            self._request_tick()
        self._schedule_promotion()

    def effective_priority(self, task_id: int) -> int | None:
        """A queued task's priority as dispatch sees it now (aging), or None."""
        t = self._tasks.get(task_id)
        return None if t is None else t.eff

    # -- bandwidth -------------------------------------------------------------------------

    async def set_bandwidth_limit(self, bps: float | None, until: datetime | float | None = None) -> None:
        """Limit what network jobs move, in bytes/s, across all of them (None: no limit).
        With `until` (an aware datetime, or seconds from now) the limit is temporary and
        overrides the weekly schedule until then; without, it is the base limit."""
        self._check_open()
        limit = check_bps(bps)
        until_ts = self._until_ts(until)
        bw = self._bw
        if until_ts is None:
            bw.base, bw.override, bw.override_until = limit, None, None
        else:
            bw.override, bw.override_until = limit, until_ts
        data = {"bandwidth_limit": limit, "until": until_ts}
        await self._save_bandwidth(data)

    async def set_bandwidth_schedule(self, windows: Iterable[Any], tz: str | None = None) -> None:
        """A weekly schedule of global limits: entries `(days, start, end, bps)`, e.g.
        `("mon-fri", "09:00", "17:00", 1_000_000)`, in `tz` (default: local time). During
        a window its limit (None: unlimited) replaces the base limit; outside, the base
        limit applies. An empty list removes the schedule."""
        self._check_open()
        if isinstance(windows, str | bytes) or not isinstance(windows, Iterable):
            raise InvalidArgument(f"windows: must be a list of (days, start, end, bps), got {windows!r}")
        parsed = tuple(BandwidthWindow.of(w) for w in windows)
        zone = None
        if tz is not None:
            try:
                zone = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
                raise InvalidArgument(f"tz: unknown time zone {tz!r}") from e
        self._bw.schedule, self._bw.tz, self._bw_tz_name = parsed, zone, tz
        await self._save_bandwidth({"bandwidth_schedule": [w.to_json() for w in parsed], "tz": tz})

    async def _save_bandwidth(self, data: dict[str, Any]) -> None:
        stored = {**self._bw.to_json(), "tz": self._bw_tz_name}
        await self._emit(EventKind.LIMITS_CHANGED, data,
                         extra=lambda conn: settings_put(conn, "bandwidth", stored))  # fmt: skip
        self._bw_refresh()

    def bandwidth(self) -> BandwidthStatus:
        """The global bandwidth limit now, where it comes from, and its settings."""
        self._check_open()
        return self._bw.status(self._now(), self._bw_tz_name, len(self._bw_waiters))

    def _bw_refresh(self) -> None:
        """Apply the limit in force now to the shared bucket, wake throttled handlers so
        they see it, and come back when it next changes."""
        now = self._now()
        limit, _ = self._bw.limit_at(now)
        if limit is None:
            self._bw_bucket = None
        elif self._bw_bucket is None:
            self._bw_bucket = ByteBucket(limit, now)
        elif self._bw_bucket.rate != limit:
            self._bw_bucket.set_rate(now, limit)
        self._io.limits["net_rx"] = self._io.limits["net_tx"] = limit
        self._io_freed()
        for fut in self._bw_waiters:
            _wake(fut)
        if self._bw_timer is not None:
            self._bw_timer.cancel()
            self._bw_timer = None
        change = self._bw.next_change(now)
        if change is not None or self._bw.schedule:
            when = min(change or math.inf, now + BANDWIDTH_RECHECK)
            self._bw_timer = self._timers.call_at(when, self._bw_refresh)
        self._request_tick()

    async def _throttle(self, run: _Run, nbytes: int) -> None:
        """Take `nbytes` from the shared bucket and the task's own, then wait for its turn
        in both; wakes early when a limit changes or the task is interrupted."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise InvalidArgument(f"nbytes: must be an int >= 0, got {nbytes!r}")
        if run.interrupt is not None:
            raise Interrupted(run.interrupt)
        now = self._now()
        own = self._own_bucket(run, now)
        shared = self._bw_bucket
        marks = [(b, b.take(now, nbytes)) for b in (shared, own) if b is not None]
        loop = asyncio.get_running_loop()
        while marks:
            now = self._now()
            # a global limit lifted (or replaced) while waiting no longer holds this task
            marks = [(b, m) for b, m in marks if b is own or b is self._bw_bucket]
            wait = max((b.wait(now, m) for b, m in marks), default=0.0)
            if wait <= 0:
                return
            fut: asyncio.Future[None] = loop.create_future()
            handle = self._timers.call_at(now + wait, functools.partial(_wake, fut))
            self._bw_waiters.add(fut)
            run.waiting = fut
            try:
                await fut
            finally:
                handle.cancel()
                self._bw_waiters.discard(fut)
                run.waiting = None
            if run.interrupt is not None:
                raise Interrupted(run.interrupt)

    def _own_bucket(self, run: _Run, now: float) -> ByteBucket | None:
        payload = run.payload
        limit = payload.get("bandwidth_limit") if isinstance(payload, dict) else None
        if limit is None:
            return None
        try:
            bps = check_bps(limit, "bandwidth_limit")
        except InvalidArgument as e:
            raise Permanent(str(e)) from e
        assert bps is not None
        if run.bw is None:
            run.bw = ByteBucket(bps, now)
        return run.bw

    # -- the API ---------------------------------------------------------------------------

    async def set_rate_limit(self, scope: str, per_second: float | None, burst: float | None = None) -> None:
        """Start at most `per_second` tasks a second of `scope` ("kind:<kind>" or
        "group:<group>"), with bursts of `burst` (default: one second's worth, at least 1).
        None removes the limit. Stored; takes effect at once."""
        self._check_open()
        scope, per_second, burst = check_rate_limit(scope, per_second, burst)
        if per_second is None:
            self._settings.rate_limits.pop(scope, None)
            self._buckets.pop(scope, None)
        else:
            self._settings.rate_limits[scope] = (float(per_second), None if burst is None else float(burst))
            self._buckets[scope] = TokenBucket(float(per_second), burst, self._now())
        limits = {k: list(v) for k, v in self._settings.rate_limits.items()}
        data = {"rate_limit": scope, "per_second": per_second, "burst": burst}
        await self._emit(EventKind.LIMITS_CHANGED, data, scope=scope,
                         extra=lambda conn: settings_put(conn, "rate_limits", limits))  # fmt: skip
        self._ready.unpark(_RATE)
        self._request_tick()

    def rate_limits(self) -> dict[str, tuple[float, float | None]]:
        return dict(self._settings.rate_limits)

    async def set_io_capacity(self, resource: str, bps: float | None) -> None:
        """Fix a resource's capacity in bytes/s (None: learn it from what it does at best)."""
        self._check_open()
        resource, bps = check_io_capacity(resource, bps)
        self._io.configured[resource] = None if bps is None else float(bps)
        configured = {r: v for r, v in self._io.configured.items() if v}
        await self._emit(EventKind.SETTINGS_CHANGED, {"io_capacity": {resource: bps}},
                         extra=lambda conn: settings_put(conn, "io_capacity", configured))  # fmt: skip
        self._io_freed()
        self._request_tick()

    def io_status(self) -> dict[str, dict[str, float]]:
        """Per resource: measured and used bytes/s, capacity, and whether it was configured."""
        io = self._io
        return {r: {"measured": io.measured[r], "used": io.usage(r), "capacity": io.capacity(r),
                    "configured": float(bool(io.configured.get(r))), "tasks": float(io.users[r])}
                for r in RESOURCES}  # fmt: skip

    def add_pressure_source(self, name: str, source: Callable[[], float]) -> None:
        """Add a source of pressure (a callable returning 0..1, read once a second)."""
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"name: must be a non-empty string, got {name!r}")
        if not callable(source):
            raise InvalidArgument(f"source: must be callable, got {source!r}")
        self._pressure_sources[name] = source

    def remove_pressure_source(self, name: str) -> None:
        self._pressure_sources.pop(name, None)

    @property
    def pressure(self) -> tuple[float, str | None]:
        """The current pressure (0..1) and the source it comes from."""
        return self._pressure, self._pressure_source

    def _load_gates(self, settings: dict[str, Any]) -> None:
        """Stored limits, shares and bandwidth settings, and what history says each kind
        does to IO, when the database is opened."""
        now = self._now()
        for g, (weight, slots) in (settings.get("group_shares") or {}).items():
            self._settings.group_shares[g] = (float(weight), int(slots))
        stored = settings.get("bandwidth") or {}
        try:
            self._bw = BandwidthPolicy.from_json(stored)
            self._bw_tz_name = stored.get("tz")
        except (InvalidArgument, ZoneInfoNotFoundError, ValueError) as e:
            logger.warning("ignoring stored bandwidth settings that no longer parse: %s", e)
        self._load_kind_io()
        for scope, (rate, burst) in (settings.get("rate_limits") or {}).items():
            self._settings.rate_limits[scope] = (rate, burst)
            self._buckets[scope] = TokenBucket(rate, burst, now)
        for r, bps in (settings.get("io_capacity") or {}).items():
            if r in RESOURCES and bps:
                self._io.configured[r] = float(bps)

    def _describe_io(self) -> str:
        return ", ".join(
            f"{r} {human_rate(self._io.usage(r))}/{human_rate(self._io.capacity(r))}" for r in RESOURCES
        )
