"""When schedules fire: cron expressions in a time zone, fixed-rate intervals, one-shots.

Cron fires are computed on wall-clock time in the schedule's zone, then placed on the
time line: a wall time that does not exist (spring forward: 02:30 in Europe/Paris on the
last Sunday of March) fires once, at the instant the gap ends (03:00); a wall time that
happens twice (fall back) fires once, the first time. Intervals are fixed-rate on UTC:
anchor + k·every, so DST never shifts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from core.errors import InvalidSchedule

# field name, low, high, names allowed (cron's usual ranges; day of week 0 or 7 is Sunday)
_FIELDS5 = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_SECOND = ("second", 0, 59)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_ITEM = re.compile(r"^(\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(\d+))?$")


def check_cron(expr: str) -> list[str]:
    """Field-level problems with a cron expression ("minute must be 0–59, got 61"); empty
    when croniter accepts it. Five fields, or six with seconds first."""
    if not isinstance(expr, str) or not expr.strip():
        return ["the expression is empty"]
    parts = expr.split()
    if len(parts) not in (5, 6):
        return [f"a cron expression has 5 fields (or 6 with seconds first), got {len(parts)}"]
    fields = (_SECOND, *_FIELDS5) if len(parts) == 6 else _FIELDS5
    problems = []
    for (name, low, high), part in zip(fields, parts, strict=True):
        problem = _check_field(name, low, high, part)
        if problem:
            problems.append(problem)
    if not problems and not croniter.is_valid(expr, second_at_beginning=len(parts) == 6):
        problems.append(f"{expr!r} is not a valid cron expression")
    return problems


def _check_field(name: str, low: int, high: int, part: str) -> str | None:
    names = _MONTHS if name == "month" else _DAYS if name == "day of week" else {}
    for item in part.split(","):
        if name in ("day of month", "day of week") and re.search(r"[LW#]", item):
            continue  # croniter's extensions (last day, nth weekday): croniter checks them
        m = _ITEM.match(item)
        if not m:
            return f"{name}: {item!r} is not a number, range or */step"
        base, step = m.group(1), m.group(2)
        if step is not None and int(step) == 0:
            return f"{name}: a step must be at least 1, got {item!r}"
        if base in ("*", "?"):
            continue
        for bound in base.split("-"):
            value = names.get(bound.upper()) if not bound.isdigit() else int(bound)
            if value is None:
                return f"{name}: unknown name {bound!r}"
            if not low <= value <= high:
                return f"{name} must be {low}–{high}, got {bound}"
    return None


@lru_cache(maxsize=256)
def zone(name: str | None) -> tzinfo:
    """An IANA zone by name; None means the machine's local zone."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            "tz", f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')"
        ) from None


def local_zone_name() -> str | None:
    """The local zone's IANA name where the platform tells it (else None: local)."""
    import os

    tz = os.environ.get("TZ")
    if tz and not tz.startswith(":"):
        return tz
    try:
        link = os.readlink("/etc/localtime")
    except OSError:
        return None
    _, _, name = link.partition("zoneinfo/")
    return name or None


def _wall(ts: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, tz).replace(tzinfo=None)


def wall_to_instant(wall: datetime, tz: tzinfo) -> float:
    """The instant a naive wall time means in `tz`: the first of two (fall back), or the
    end of the gap it falls in (spring forward)."""
    first = wall.replace(tzinfo=tz, fold=0).timestamp()
    second = wall.replace(tzinfo=tz, fold=1).timestamp()
    if first == second:
        return first
    if _wall(first, tz) == wall and _wall(second, tz) == wall:
        return min(first, second)  # a repeated hour: its first occurrence
    # In a gap: find the transition, the first instant whose wall time is at or after `wall`.
    lo, hi = math.floor(min(first, second)), math.ceil(max(first, second))
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if _wall(mid, tz) >= wall:
            hi = mid
        else:
            lo = mid
    return float(hi)


def next_cron(expr: str, tz: tzinfo, after: float) -> float:
    """The first fire of `expr` in `tz` strictly after the instant `after`."""
    seconds_first = len(expr.split()) == 6
    start = _wall(after, tz)
    it = croniter(expr, start, second_at_beginning=seconds_first)
    for _ in range(100_000):
        candidate = wall_to_instant(it.get_next(datetime), tz)
        # A wall time of a repeated hour maps to its first occurrence, which may lie
        # before `after` when `after` is in the second one: move on.
        if candidate > after:
            return candidate
    raise InvalidSchedule("cron", f"{expr!r} never fires")  # pragma: no cover - croniter bounds it


def next_every(anchor: float, every: float, after: float, anchor_fires: bool) -> float:
    """Fixed rate: the first of anchor + k·every (k >= 0 if the anchor fires, else >= 1)
    strictly after `after`."""
    first = anchor if anchor_fires else anchor + every
    if after < first:
        return first
    k = math.floor((after - anchor) / every) + 1
    t = anchor + k * every
    while t <= after:  # floating point
        k += 1
        t = anchor + k * every
    return t


@dataclass(frozen=True, slots=True)
class Trigger:
    """What makes a schedule fire, with its bounds; times are epoch seconds."""

    cron: str | None = None
    every: float | None = None
    at: float | None = None
    tz: str | None = None
    start_at: float | None = None
    end_at: float | None = None
    created_at: float = 0.0

    def next_after(self, after: float) -> float | None:
        """The first fire strictly after `after`, or None once there are no more."""
        if self.at is not None:
            t: float | None = self.at if self.at > after else None
        elif self.every is not None:
            anchor = self.start_at if self.start_at is not None else self.created_at
            t = next_every(anchor, self.every, after, anchor_fires=self.start_at is not None)
        else:
            assert self.cron is not None
            if self.start_at is not None and after < self.start_at:
                after = math.nextafter(self.start_at, -math.inf)
            t = next_cron(self.cron, zone(self.tz), after)
        if t is not None and self.end_at is not None and t > self.end_at:
            return None
        return t

    def fires(self, after: float, until: float, limit: int) -> Iterator[float]:
        """Fires in (after, until], at most `limit` of them."""
        t = self.next_after(after)
        n = 0
        while t is not None and t <= until and n < limit:
            yield t
            n += 1
            t = self.next_after(t)


def preview(
    cron: str, tz: str | None = None, count: int = 5, after: datetime | None = None
) -> list[datetime]:
    """The next `count` fires of a cron expression, as aware datetimes in the zone.
    Raises InvalidSchedule for a bad expression or zone."""
    problems = check_cron(cron)
    if problems:
        raise InvalidSchedule("cron", "; ".join(problems))
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise InvalidSchedule("count", f"must be an int in 1..1000, got {count!r}")
    zone_info = zone(tz)
    start = (after or datetime.now(UTC)).timestamp()
    out = []
    t = start
    for _ in range(count):
        t = next_cron(cron, zone_info, t)
        out.append(datetime.fromtimestamp(t, zone_info))
    return out


def describe(cron: str) -> str:
    """A cron expression in words: "At 09:00, Monday through Friday"."""
    problems = check_cron(cron)
    if problems:
        raise InvalidSchedule("cron", "; ".join(problems))
    from cron_descriptor import Options, get_description

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    return str(get_description(cron, options))
