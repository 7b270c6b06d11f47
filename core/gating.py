"""Resource-aware dispatch: preemption, rate limits, IO capacities and pressure.

Preemption (SPEC §4.2): when ready work at or above `preempt_at` cannot start for lack of a
slot, exactly as many running tasks as it needs are interrupted — the least urgent first,
ties the most recently started, and only tasks strictly less urgent than the newcomer (for
a group's slots, only tasks of that group). A victim is paused ("preempted"), keeps its
attempt and checkpoint, and stays queued in its place: it starts again when no more urgent
work is waiting for the slot.

The sampler (SPEC §4.3) reads system throughput once a second on the engine's clock;
pressure sources are read with it. Both can be injected for tests."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from core.control import EngineControl
from core.dispatch import MirrorTask
from core.errors import InvalidArgument
from core.resources import RESOURCES, SAMPLE_SECONDS, TokenBucket, human_rate
from core.scheduler import _Run
from core.store.transitions import settings_put
from core.types import EventKind, PauseReason

logger = logging.getLogger(__name__)


class ResourceEngine(EngineControl):
    """Preemption, and the gates dispatch checks besides free slots."""

    # -- preemption ------------------------------------------------------------------------

    def _preempt(self) -> None:
        preempt_at = self.config.preempt_at
        assert preempt_at is not None
        # Ready lane heads urgent enough to preempt, most urgent first: the ones that pass
        # every gate wait for a global slot; the ones only their group's limit refuses
        # wait for a slot of their group.
        urgent = sorted((t for t in self._ready.heads() if t.priority <= preempt_at), key=lambda t: t.order)
        if not urgent:
            return
        freeing = [r for r in self._running.values() if r.interrupt == "preempt" and not r.finished]
        for t in urgent:
            group_bound = not self._admit(t) and self._refusals.get(t.lane, "").startswith(
                f"group {t.group} "
            )
            if not group_bound and not self._admit(t):
                continue  # refused by something preemption cannot help (rate, IO, pressure)
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
        recently started), of t's group when only the group's limit stands in the way."""
        best: _Run | None = None
        for run in self._running.values():
            v = run.task
            if run.interrupt is not None or run.finished or v.priority <= t.priority:
                continue
            if group_bound and v.group != t.group:
                continue
            if best is None or (v.priority, run.started_at) > (best.task.priority, best.started_at):
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
        if self._refusals or before != self._pressure:
            self._request_tick()

    # -- the API ---------------------------------------------------------------------------

    async def set_rate_limit(self, scope: str, per_second: float | None, burst: float | None = None) -> None:
        """Start at most `per_second` tasks a second of `scope` ("kind:<kind>" or
        "group:<group>"), with bursts of `burst` (default: one second's worth, at least 1).
        None removes the limit. Stored; takes effect at once."""
        self._check_open()
        if not isinstance(scope, str) or not scope.startswith(("kind:", "group:")) or scope.endswith(":"):
            raise InvalidArgument(f"scope: must be 'kind:<kind>' or 'group:<group>', got {scope!r}")
        for name, value in (("per_second", per_second), ("burst", burst)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not math.isfinite(value) or value <= 0):  # fmt: skip
                raise InvalidArgument(f"{name}: must be a number > 0, got {value!r}")
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
        self._request_tick()

    def rate_limits(self) -> dict[str, tuple[float, float | None]]:
        return dict(self._settings.rate_limits)

    async def set_io_capacity(self, resource: str, bps: float | None) -> None:
        """Fix a resource's capacity in bytes/s (None: learn it from what it does at best)."""
        self._check_open()
        if resource not in RESOURCES:
            raise InvalidArgument(f"resource: must be one of {', '.join(RESOURCES)}, got {resource!r}")
        if bps is not None and (isinstance(bps, bool) or not isinstance(bps, int | float) or not bps > 0):
            raise InvalidArgument(f"bps: must be a number > 0 or None, got {bps!r}")
        self._io.configured[resource] = None if bps is None else float(bps)
        configured = {r: v for r, v in self._io.configured.items() if v}
        await self._emit(EventKind.SETTINGS_CHANGED, {"io_capacity": {resource: bps}},
                         extra=lambda conn: settings_put(conn, "io_capacity", configured))  # fmt: skip
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
        now = self._now()
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
