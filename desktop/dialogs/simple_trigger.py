"""Simple-mode schedules (every N minutes or hours, daily, weekdays, weekly at a time) and
the cron expressions that say the same, both ways. Simple writes cron wherever cron says
the same thing, so switching modes never changes what a schedule does; what Simple cannot
show is custom."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time

from core import InvalidSchedule
from core.schedules import describe

MINUTES, HOURS, DAILY, WEEKDAYS, WEEKLY, CUSTOM = "minutes", "hours", "daily", "weekdays", "weekly", "custom"
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # cron numbers 1..6, 0
_NUM = r"(\d{1,2})"


@dataclass(frozen=True, slots=True)
class SimpleTrigger:
    repeat: str
    n: int = 1
    at: time = time(9, 0)
    days: frozenset[int] = field(default_factory=frozenset)  # 0 = Monday

    def cron(self) -> str | None:
        """The cron expression that says the same, or None (an interval cron cannot)."""
        if self.repeat == MINUTES:
            return ("* * * * *" if self.n == 1 else f"*/{self.n} * * * *") if 60 % self.n == 0 else None
        if self.repeat == HOURS:
            return ("0 * * * *" if self.n == 1 else f"0 */{self.n} * * *") if 24 % self.n == 0 else None
        hm = f"{self.at.minute} {self.at.hour}"
        if self.repeat == DAILY:
            return f"{hm} * * *"
        if self.repeat == WEEKDAYS:
            return f"{hm} * * 1-5"
        if self.repeat == WEEKLY and self.days:
            return f"{hm} * * " + ",".join(str((d + 1) % 7) for d in sorted(self.days))
        return None

    def every(self) -> float | None:
        """Seconds, for an interval cron cannot express (every 7 hours)."""
        if self.repeat in (MINUTES, HOURS) and self.cron() is None:
            return self.n * (60 if self.repeat == MINUTES else 3600)
        return None


def simple_from_cron(expr: str) -> SimpleTrigger | None:
    """What Simple mode shows for a cron expression, or None (custom)."""
    parts = expr.split()
    if len(parts) != 5:
        return None
    minute, hour, dom, month, dow = parts
    if (dom, month) != ("*", "*"):
        return None
    if hour == "*" and dow == "*":
        if minute == "*":
            return SimpleTrigger(MINUTES, 1)
        m = re.fullmatch(r"\*/" + _NUM, minute)
        if m and 60 % int(m.group(1)) == 0:
            return SimpleTrigger(MINUTES, int(m.group(1)))
    if minute == "0" and dow == "*":
        if hour == "*":
            return SimpleTrigger(HOURS, 1)
        m = re.fullmatch(r"\*/" + _NUM, hour)
        if m and 24 % int(m.group(1)) == 0:
            return SimpleTrigger(HOURS, int(m.group(1)))
    if not (minute.isdigit() and hour.isdigit() and int(minute) < 60 and int(hour) < 24):
        return None
    at = time(int(hour), int(minute))
    if dow == "*":
        return SimpleTrigger(DAILY, at=at)
    if dow.upper() in ("1-5", "MON-FRI"):
        return SimpleTrigger(WEEKDAYS, at=at)
    days: set[int] = set()
    names = {d.upper(): i for i, d in enumerate(DAYS)}
    for item in dow.split(","):
        if item.isdigit() and int(item) <= 7:
            days.add((int(item) - 1) % 7)
        elif item.upper() in names:
            days.add(names[item.upper()])
        else:
            return None
    return SimpleTrigger(WEEKLY, at=at, days=frozenset(days))


def simple_from_every(seconds: float) -> SimpleTrigger | None:
    if seconds % 3600 == 0:
        return SimpleTrigger(HOURS, int(seconds // 3600))
    if seconds % 60 == 0:
        return SimpleTrigger(MINUTES, int(seconds // 60))
    return None


def cron_problem(expr: str) -> str:
    """Field-level problems with a cron expression ("minute must be 0–59, got 61"), or ""."""
    try:
        describe(expr)
    except InvalidSchedule as e:
        text = str(e)
        return text.split(": ", 1)[1] if text.startswith("cron: ") else text
    return ""
