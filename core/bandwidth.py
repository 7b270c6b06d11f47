"""Bandwidth limits (SPEC §3.4): the byte budget network handlers draw from.

The global limit in force at an instant is, in order: a temporary override ("100 KB/s
until 17:00"), else the window of the weekly schedule that covers the instant (the most
restrictive, if several do), else the base limit. `None` means unlimited. Handlers call
`await ctx.throttle(n)` before moving `n` bytes; the engine makes them wait on a shared
token bucket, and on their own bucket when their payload sets `bandwidth_limit`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from core.clock import from_ts
from core.errors import InvalidArgument
from core.types import BandwidthStatus
from core.validation import check_positive

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_SETS = {
    "daily": range(7),
    "all": range(7),
    "everyday": range(7),
    "weekdays": range(5),
    "weekends": range(5, 7),
    "weekend": range(5, 7),
}
MIN_BURST = 16 * 1024  # bytes: a bucket always lets a small chunk through at once
BURST_SECONDS = 0.25  # a bucket holds a quarter second's worth, so transfers stay smooth


def _day(name: str, entry: str) -> int:
    key = name.strip().lower()[:3]
    if key not in DAY_NAMES:
        raise InvalidArgument(f"days: unknown day {name.strip()!r} in {entry!r} (use mon..sun)")
    return DAY_NAMES.index(key)


def parse_days(days: Any) -> frozenset[int]:
    """ "mon-fri", "sat,sun", "weekdays", "daily", or an iterable of 0..6 (0 = Monday)."""
    if isinstance(days, str):
        out: set[int] = set()
        for part in days.split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part in _DAY_SETS:
                out.update(_DAY_SETS[part])
            elif "-" in part:
                a, b = (_day(x, days) for x in part.split("-", 1))
                out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
            else:
                out.add(_day(part, days))
        if not out:
            raise InvalidArgument(f"days: no day in {days!r}")
        return frozenset(out)
    if isinstance(days, Iterable):
        items = list(days)
        if not items or any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in items):
            raise InvalidArgument(f"days: must be day numbers 0..6 (0 = Monday), got {days!r}")
        return frozenset(items)
    raise InvalidArgument(f"days: must be a string like 'mon-fri' or day numbers, got {days!r}")


def parse_time(value: Any, name: str) -> time:
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        if value.strip() in ("24:00", "24:00:00"):
            return time(0, 0)  # midnight at the end of the day
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidArgument(f"{name}: must be a time like '08:30', got {value!r}")


def check_bps(value: Any, name: str = "bps") -> float | None:
    """Bytes per second > 0, or None (unlimited)."""
    return check_positive(name, value, allow_none=True, unit="bytes per second")


@dataclass(frozen=True, slots=True)
class BandwidthWindow:
    """On `days` from `start` to `end` (local time; an end before the start runs past
    midnight into the next day, an end equal to the start makes it the whole day), the
    global limit is `bps` (None: unlimited)."""

    days: frozenset[int]
    start: time
    end: time
    bps: float | None

    @classmethod
    def of(cls, entry: Any) -> BandwidthWindow:
        if isinstance(entry, BandwidthWindow):
            return entry
        if isinstance(entry, dict):
            entry = (entry.get("days"), entry.get("start"), entry.get("end"), entry.get("bps"))
        if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 4:
            raise InvalidArgument(f"schedule entry: must be (days, start, end, bps), got {entry!r}")
        days, start, end, bps = entry
        return cls(parse_days(days), parse_time(start, "start"), parse_time(end, "end"), check_bps(bps))

    def to_json(self) -> dict[str, Any]:
        return {
            "days": sorted(self.days),
            "start": self.start.isoformat("minutes"),
            "end": "24:00" if self.end == time(0, 0) else self.end.isoformat("minutes"),
            "bps": self.bps,
        }

    def covers(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        day = local.weekday()
        if self.start == self.end:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        # past midnight: the evening of a listed day, or the morning after one
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)

    def edges_after(self, local: datetime) -> Iterable[datetime]:
        """The starts and ends of this window in the next eight days."""
        base = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for d in range(9):
            day = base + timedelta(days=d)
            for t in (self.start, self.end):
                yield day.replace(hour=t.hour, minute=t.minute, second=t.second, microsecond=t.microsecond)


@dataclass(slots=True)
class BandwidthPolicy:
    base: float | None = None
    override: float | None = None
    override_until: float | None = None  # timestamp; None: no override
    schedule: tuple[BandwidthWindow, ...] = ()
    tz: tzinfo | None = None  # None: the machine's local time zone

    def limit_at(self, ts: float) -> tuple[float | None, str]:
        """The global limit at `ts` and where it comes from, in words."""
        if self.override_until is not None and ts < self.override_until:
            until = datetime.fromtimestamp(self.override_until, self.tz).astimezone(self.tz)
            return self.override, f"until {until:%H:%M}"
        local = datetime.fromtimestamp(ts, self.tz).astimezone(self.tz)
        covering = [w for w in self.schedule if w.covers(local)]
        if covering:
            limits = [w.bps for w in covering if w.bps is not None]
            return (min(limits) if limits else None), "schedule"
        return self.base, "limit"

    def next_change(self, ts: float) -> float | None:
        """The next instant the limit may change (an override ends, a window opens or
        closes), or None."""
        out: list[float] = []
        if self.override_until is not None and ts < self.override_until:
            out.append(self.override_until)
        if self.schedule:
            local = datetime.fromtimestamp(ts, self.tz).astimezone(self.tz)
            for w in self.schedule:
                out.extend(e.timestamp() for e in w.edges_after(local) if e.timestamp() > ts)
        return min(out) if out else None

    def status(self, now: float, tz_name: str | None, waiting: int = 0) -> BandwidthStatus:
        limit, source = self.limit_at(now)
        active = self.override_until is not None and now < self.override_until
        return BandwidthStatus(
            limit=limit,
            source=source,
            base=self.base,
            override=self.override if active else None,
            override_until=from_ts(self.override_until) if active else None,
            schedule=self.schedule,
            tz=tz_name,
            waiting=waiting,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "override": self.override,
            "override_until": self.override_until,
            "schedule": [w.to_json() for w in self.schedule],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> BandwidthPolicy:
        """Stored settings (as to_json wrote them, with "tz"); raises InvalidArgument or
        ZoneInfoNotFoundError if they no longer parse."""
        data = data or {}
        tz = data.get("tz")
        return cls(
            base=data.get("base"),
            override=data.get("override"),
            override_until=data.get("override_until"),
            schedule=tuple(BandwidthWindow.of(w) for w in data.get("schedule") or ()),
            tz=ZoneInfo(tz) if tz else None,
        )


class ByteBucket:
    """A token bucket for bytes that serves takers in order: each take gets a mark (the
    bucket's total taken so far, its own bytes included) and may go ahead once the bucket
    has earned that much. A later taker never delays an earlier one, and a rate change
    applies at once to everyone still waiting."""

    __slots__ = ("at", "burst", "earned", "rate", "taken")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = burst_for(rate)
        self.taken = 0.0
        self.earned = self.burst  # starts full
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.earned = min(self.earned + (now - self.at) * self.rate, self.taken + self.burst)
        self.at = max(self.at, now)

    def take(self, now: float, nbytes: float) -> float:
        self._refill(now)
        self.taken += nbytes
        return self.taken

    def wait(self, now: float, mark: float) -> float:
        """Seconds until the taker holding `mark` may go ahead (0: now)."""
        self._refill(now)
        return max(0.0, (mark - self.earned) / self.rate)

    def set_rate(self, now: float, rate: float) -> None:
        self._refill(now)
        self.rate, self.burst = rate, burst_for(rate)


def burst_for(bps: float) -> float:
    return max(bps * BURST_SECONDS, MIN_BURST)
