"""What dispatch checks besides free slots: rate limits (token buckets), IO headroom
(budgets against sampled throughput and capacities), system pressure, and the bandwidth
buckets network handlers draw from. All timing reads the engine's clock, and the samplers
are injectable, so tests drive them deterministically."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RESOURCES = ("disk_read", "disk_write", "net_rx", "net_tx")
LABELS = {
    "disk_read": "disk read",
    "disk_write": "disk write",
    "net_rx": "network in",
    "net_tx": "network out",
}
# A capacity is never learned below these (a quiet machine must not look saturated).
FLOORS = {"disk_read": 50e6, "disk_write": 50e6, "net_rx": 5e6, "net_tx": 5e6}
SAMPLE_SECONDS = 1.0
EWMA_ALPHA = 0.3

Sampler = Callable[[], Mapping[str, float]]  # -> bytes/s for each of RESOURCES


def human_rate(bps: float) -> str:
    for unit, size in (("GB/s", 1e9), ("MB/s", 1e6), ("KB/s", 1e3)):
        if bps >= size:
            return f"{bps / size:.3g} {unit}"
    return f"{bps:.0f} B/s"


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; refilled lazily from the clock."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float | None, now: float) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def ready_at(self, now: float, need: float = 1.0) -> float:
        """When `need` tokens will be there (now, if they are)."""
        self._refill(now)
        if self.tokens >= need:
            return now
        return now + (need - self.tokens) / self.rate

    def take(self, now: float, amount: float = 1.0) -> None:
        self._refill(now)
        self.tokens -= amount


class PsutilSampler:
    """System disk and network throughput, in bytes/s, from psutil's cumulative counters.

    Counters that go backwards (a wrap, a device unplugged, a counter reset) give no
    sample for that resource this time instead of a negative or huge rate."""

    def __init__(self) -> None:
        self._last: dict[str, float] | None = None
        self._at = 0.0

    def _counters(self) -> dict[str, float]:
        import psutil

        disk = psutil.disk_io_counters(perdisk=False)
        # Loopback traffic never leaves the machine: a local server (a test's, a sync
        # daemon's) must not make the network look saturated.
        nics = psutil.net_io_counters(pernic=True) or {}
        net = [c for name, c in nics.items() if not _loopback(name)]
        return {
            "disk_read": float(disk.read_bytes) if disk else 0.0,
            "disk_write": float(disk.write_bytes) if disk else 0.0,
            "net_rx": float(sum(c.bytes_recv for c in net)),
            "net_tx": float(sum(c.bytes_sent for c in net)),
        }

    def __call__(self) -> dict[str, float]:
        now = time.monotonic()
        counters = self._counters()
        last, at = self._last, self._at
        self._last, self._at = counters, now
        if last is None or now <= at:
            return {}
        dt = now - at
        return {r: (counters[r] - last[r]) / dt for r in RESOURCES if counters[r] >= last[r]}


def _loopback(nic: str) -> bool:
    """`lo` on Linux, `lo0` on macOS, "Loopback Pseudo-Interface 1" on Windows."""
    return nic == "lo" or nic.startswith("lo0") or "loopback" in nic.lower()


def memory_pressure() -> float:
    """0 below 75% of memory in use, rising to 1 at 95%."""
    import psutil

    return min(1.0, max(0.0, (float(psutil.virtual_memory().percent) - 75.0) / 20.0))


def cpu_pressure() -> float:
    """0 below 70% CPU use (all cores, since the last call), rising to 1 at 100%."""
    import psutil

    return min(1.0, max(0.0, (float(psutil.cpu_percent(interval=None)) - 70.0) / 30.0))


def battery_pressure() -> float:
    """On battery: 0.5, or 1 below 20% charge; on mains (or no battery): 0."""
    import psutil

    battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    if battery is None or battery.power_plugged:
        return 0.0
    return 1.0 if battery.percent < 20 else 0.5


@dataclass(frozen=True, slots=True)
class PressureSource:
    """A named pressure source (the name is what a waiting task's reason shows)."""

    name: str
    read: Callable[[], float]

    def __call__(self) -> float:
        return self.read()


# What a desktop app watches: pass as EngineConfig(pressure_sources=SYSTEM_PRESSURE).
SYSTEM_PRESSURE = (
    PressureSource("memory", memory_pressure),
    PressureSource("CPU", cpu_pressure),
    PressureSource("battery", battery_pressure),
)


def pressure_threshold(priority: int) -> float:
    """The pressure at which a task of this priority waits (HIGH and above never do)."""
    if priority >= 192:
        return 0.5
    if priority >= 128:
        return 0.75
    return math.inf


@dataclass(slots=True)
class IoState:
    """Sampled throughput, capacities, and what running tasks take of them."""

    measured: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0.0))
    learned: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0.0))
    configured: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(RESOURCES))
    limits: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(RESOURCES))  # bandwidth
    measured_runs: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0.0))
    measured_users: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    running: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0.0))
    users: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    samples: int = 0
    seen: set[str] = field(default_factory=set)  # resources with a reading so far

    def capacity(self, r: str) -> float:
        configured = self.configured.get(r)
        cap = configured if configured else max(self.learned[r], FLOORS[r])
        limit = self.limits.get(r)
        return min(cap, limit) if limit else cap

    def usage(self, r: str) -> float:
        """The larger of the measured system rate and what running tasks take: their
        budgets, or the rate they were measured at when that is more."""
        return max(self.measured[r], self.running[r] + self.measured_runs[r])

    def add_sample(self, rates: Mapping[str, float]) -> None:
        """Smooth a sample (EWMA) and learn capacity as the highest smoothed rate seen:
        capacity is what the device did at its best, never what it does now."""
        self.samples += 1
        for r, rate in rates.items():
            if r not in self.measured or not math.isfinite(rate) or rate < 0:
                continue
            first = r not in self.seen  # the first real reading is taken as it is
            self.seen.add(r)
            smoothed = rate if first else EWMA_ALPHA * rate + (1 - EWMA_ALPHA) * self.measured[r]
            self.measured[r] = smoothed
            self.learned[r] = max(self.learned[r], smoothed)

    def headroom(self, r: str, threshold: float) -> float:
        """How much more of `r` a task may ask for now. Unbounded while no task uses it:
        at least one task per resource may always run, so work never stalls."""
        if self.users[r] + self.measured_users[r] == 0:
            return math.inf
        return threshold * self.capacity(r) - self.usage(r)

    def refusal(self, budget: Mapping[str, float], threshold: float) -> tuple[str, float] | None:
        """The first resource a task with this budget would push past the threshold, and
        its need of it; None if it fits."""
        for r in RESOURCES:
            need = budget.get(r, 0.0)
            if need > 0 and need > self.headroom(r, threshold):
                return r, need
        return None

    def describe(self, r: str) -> str:
        cap = self.capacity(r)
        return f"IO busy: {LABELS[r]} {100 * self.usage(r) / cap:.0f}% of {human_rate(cap)}"

    def hold(self, budget: Mapping[str, float], sign: int) -> None:
        for r, need in budget.items():
            if need > 0:
                self.running[r] = max(0.0, self.running[r] + sign * need)
                self.users[r] = max(0, self.users[r] + sign)


def budget_of(io: Mapping[str, Any] | None) -> dict[str, float]:
    if not io:
        return {}
    return {r: float(io.get(r, 0.0) or 0.0) for r in RESOURCES if io.get(r)}
