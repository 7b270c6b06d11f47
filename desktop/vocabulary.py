"""What the window says about a task: state labels in the words of ux §5, sizes, speeds,
ETAs, and payload summaries with secrets masked. Pure functions: no Qt, no engine calls."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from core import Priority, TaskRecord, TaskState

__all__ = [
    "Category",
    "EtaSmoother",
    "category",
    "deferral",
    "format_bytes",
    "format_duration",
    "format_eta",
    "format_limit",
    "format_priority",
    "format_rate",
    "mask_secrets",
    "payload_summary",
    "state_label",
]


class Category(StrEnum):
    """The sidebar's buckets; every task is in exactly one."""

    RUNNING = "running"
    QUEUED = "queued"  # pending (ready, scheduled or retrying later)
    PAUSED = "paused"
    BLOCKED = "blocked"  # dependencies, or a parent waiting for its parts
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # cancelled, expired, superseded, skipped


def category(rec: TaskRecord) -> Category:
    s = rec.state
    if s == TaskState.RUNNING:
        return Category.RUNNING
    if s == TaskState.PENDING:
        return Category.QUEUED
    if s == TaskState.PAUSED:
        return Category.PAUSED
    if s in (TaskState.BLOCKED, TaskState.WAITING):
        return Category.BLOCKED
    if s == TaskState.COMPLETED:
        return Category.COMPLETED
    if s in (TaskState.FAILED, TaskState.DEPENDENCY_FAILED):
        return Category.FAILED
    return Category.CANCELLED


_TERMINAL_LABELS = {
    TaskState.COMPLETED: "Completed",
    TaskState.CANCELLED: "Cancelled",
    TaskState.EXPIRED: "Expired",
    TaskState.SUPERSEDED: "Replaced by a newer job",
    TaskState.DEPENDENCY_FAILED: "Skipped — dependency failed",
    TaskState.SKIPPED: "Skipped — previous run still active",
}
_BLOCKED_IDS = re.compile(r"#(\d+)")
_GROUP_LIMIT = re.compile(r"group (.+) at its limit \((\d+)\)")


def _attempts(rec: TaskRecord) -> str:
    if rec.max_retries is None:
        return f"attempt {rec.attempt}"
    return f"attempt {rec.attempt} of {rec.max_retries + 1}"


_GENERIC_ERROR = re.compile(r"^(RuntimeError|Exception|Permanent|Error): ")


def first_line(text: str | None, limit: int = 120) -> str:
    """The first line of an error, without a generic exception name in front of it."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    line = _GENERIC_ERROR.sub("", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Names(Protocol):
    def get(self, task_id: int, default: str | None = None, /) -> str | None: ...


def state_label(
    rec: TaskRecord,
    now: datetime,
    name_of: Names | None = None,
) -> str:
    """One label per state, the same words in the row, the tooltip and History.

    `name_of` resolves the ids a blocked task waits for to names ("Blocked — waiting for
    “fetch.jpg”")."""
    s = rec.state
    reason = rec.wait_reason or ""
    if s == TaskState.RUNNING:
        if reason == "stopping":
            return "Stopping…"
        return "Running"
    if s == TaskState.FAILED:
        err = first_line(rec.error)
        return f"Failed — {err}" if err else "Failed"
    if s.is_terminal:
        return _TERMINAL_LABELS.get(s, s.value.capitalize())
    if s == TaskState.PAUSED:
        reasons = set(rec.pause_reasons)
        if "user" in reasons:
            return "Paused"
        if "preempted" in reasons:
            return PREEMPTED
        if "group" in reasons:
            return f"Paused — group {rec.group} paused" if rec.group else "Paused — group paused"
        if "global" in reasons:
            return "Paused — all jobs paused"
        return "Paused"
    if s == TaskState.BLOCKED:
        ids = [int(m) for m in _BLOCKED_IDS.findall(reason)]
        if not ids:
            return "Blocked — waiting for another job"
        names = [_quoted(i, name_of) for i in ids[:2]]
        more = f" and {len(ids) - 2} more" if len(ids) > 2 or "…" in reason else ""
        return f"Blocked — waiting for {', '.join(names)}{more}"
    if s == TaskState.WAITING:
        return "Waiting for parts"
    # pending
    if rec.run_at is not None and rec.run_at > now:
        wait = (rec.run_at - now).total_seconds()
        if rec.attempt > 1:
            return f"Retrying in {format_duration(wait, coarse=True)} ({_attempts(rec)})"
        return f"Scheduled — starts in {format_duration(wait, coarse=True)}"
    if reason.startswith("queue held"):
        return "Queued — stopped after current job"
    m = _GROUP_LIMIT.match(reason)
    if m:
        return f"Waiting — group {m.group(1)} busy ({m.group(2)} at a time)"
    if reason == "waiting for a slot":
        return "Queued — waiting for a free slot"
    deferred = deferral(reason)
    if deferred is not None:
        return f"Waiting — {deferred} (deferred)"
    if "disk" in reason or "network" in reason or "io" in reason.split():
        return f"Waiting — {reason}"
    return "Queued"


PREEMPTED = "Paused — preempted by higher-priority job"
_IO_BUSY = re.compile(r"^IO busy: (disk read|disk write|network in|network out) (\d+)% of (.+)$")
_PRESSURE = re.compile(r"^(.+) pressure (\d+(?:\.\d+)?)$")
_RATE = re.compile(r"^rate limited: next in (.+)$")


def deferral(reason: str | None) -> str | None:
    """What a deferred task waits for, in a few words ("disk busy", "memory pressure",
    "rate limit"), from the engine's wait reason; None if it is not deferred by a gate."""
    text = reason or ""
    if m := _IO_BUSY.match(text):
        return "disk busy" if m.group(1).startswith("disk") else "network busy"
    if m := _PRESSURE.match(text):
        return f"{m.group(1)} pressure"
    if _RATE.match(text):
        return "rate limit"
    return None


def deferral_detail(reason: str | None) -> str:
    """A sentence explaining a deferral, with the engine's figures."""
    text = reason or ""
    if m := _IO_BUSY.match(text):
        device = "disk" if m.group(1).startswith("disk") else "network"
        return (
            f"The {device} is busy: {m.group(1)} at {m.group(2)}% of its capacity "
            f"({m.group(3)}). Taskdeck holds back jobs that would slow it down further and "
            f"starts this one by itself when the {device} has room again."
        )
    if m := _PRESSURE.match(text):
        return (
            f"The system is under {m.group(1)} pressure ({float(m.group(2)):.0%}). Jobs of normal "
            "priority and below wait until it eases; high-priority jobs still run."
        )
    if m := _RATE.match(text):
        return f"A start-rate limit applies to this kind or group; the next start is allowed in {m.group(1)}."
    return ""


def state_tooltip(label: str, reason: str | None = None, by: str | None = None) -> str:
    """A sentence explaining a state label (the row's tooltip). `reason` is the engine's
    wait reason (figures for a deferral); `by` names the job a preempted one made room for."""
    if label.startswith("Waiting — ") and label.endswith("(deferred)"):
        return deferral_detail(reason) or label
    if label.startswith(PREEMPTED) and by:
        return f"A higher-priority job ({by}) needed its slot; this one resumes by itself when a slot frees."
    for prefix, sentence in _STATE_TOOLTIPS:
        if label.startswith(prefix):
            return sentence
    return label


# State labels (by how they start) and the sentence that explains them.
_STATE_TOOLTIPS = (
    (
        "Queued — waiting for a free slot",
        "All slots are busy; it starts when a running job ends (see “Run up to”).",
    ),
    (
        "Queued — stopped after current",
        "“Stop after current” is on: no new job starts until you resume the queue.",
    ),
    ("Retrying", "The last attempt failed with an error that may go away; it retries by itself."),
    ("Blocked", "It runs once the jobs it depends on have completed."),
    ("Waiting for parts", "Its parts run as separate jobs; it finishes when they have ended."),
    ("Paused — preempted", "A more urgent job needed its slot; it resumes by itself afterwards."),
    ("Paused — all", "Everything is paused; use Resume all to continue."),
    ("Skipped — dependency", "A job it depended on failed or was cancelled, so it never ran."),
)


def _quoted(task_id: int, name_of: Names | None) -> str:
    name = name_of.get(task_id) if name_of is not None else None
    return f"“{name}”" if name else f"#{task_id}"


# -- numbers --------------------------------------------------------------------------------

_UNITS = ("B", "kB", "MB", "GB", "TB")


def format_bytes(n: float | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return ""  # pragma: no cover - the loop always returns


def output_text(result: object) -> str:
    """What a finished job produced, from its result (ux Q-23: the History row shows the
    output size): "2 images · 1.2 MB → 340.5 kB", "1600×1200 · 212.0 kB", "12 files · 3.4 MB"."""
    if not isinstance(result, dict):
        return ""
    r = result

    def num(key: str) -> int | None:
        v = r.get(key)
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    if num("bytes_after") is not None and num("count") is not None:  # resize.images
        done = (num("resized") or 0) + (num("skipped") or 0)
        text = f"{done} image{'s' if done != 1 else ''}"
        before = num("bytes_before")
        return text + f" · {format_bytes(before)} → {format_bytes(num('bytes_after'))}"
    if num("bytes_out") is not None:  # one resized image
        size = f"{num('width')}×{num('height')} · " if num("width") and num("height") else ""
        return size + format_bytes(num("bytes_out"))
    if num("bytes") is not None:  # copies, downloads, uploads
        items = num("copied") if num("copied") is not None else num("items")
        head = f"{items} file{'s' if items != 1 else ''} · " if items is not None else ""
        return head + format_bytes(num("bytes"))
    return ""


def format_limit(bps: float) -> str:
    """A rate limit as people say it: "500 KB/s", "1.5 MB/s" (decimal units)."""
    for unit, size in (("GB/s", 1e9), ("MB/s", 1e6), ("KB/s", 1e3)):
        if bps >= size:
            return f"{bps / size:.3g} {unit}"
    return f"{bps:.0f} B/s"


# Progress "done/total" below this many units is a count of items (steps, files, parts),
# not bytes: the engine does not say which (see the issue note).
_ITEMS_BELOW = 100_000


def format_rate(rec: TaskRecord) -> str:
    """Speed of a running task: bytes/s when it reports bytes, else items/s."""
    if rec.speed is None or rec.state != TaskState.RUNNING:
        return ""
    if rec.bytes_total is not None and rec.bytes_total >= _ITEMS_BELOW:
        return f"{format_bytes(rec.speed)}/s"
    return f"{rec.speed:.1f}/s" if rec.speed < 100 else f"{rec.speed:.0f}/s"


def format_duration(seconds: float | None, *, coarse: bool = False) -> str:
    """12 s, 3 min 20 s, 1 h 05 min; `coarse` drops seconds past two minutes."""
    if seconds is None or math.isnan(seconds):
        return ""
    s = max(0, math.ceil(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, sec = divmod(s, 60)
        if coarse and m >= 2:
            return f"{m} min"
        return f"{m} min {sec:02d} s" if sec else f"{m} min"
    h, rest = divmod(s, 3600)
    return f"{h} h {rest // 60:02d} min"


def format_eta(seconds: float | None, running: bool) -> str:
    if not running:
        return ""
    if seconds is None:
        return "estimating…"
    return format_duration(seconds, coarse=True)


_PRIORITY_NAMES = {int(p): p.name.capitalize() for p in Priority}


def format_priority(p: int) -> str:
    name = _PRIORITY_NAMES.get(p)
    return name if name else str(p)


def priority_steps(p: int, direction: int) -> int:
    """The next named level more urgent (direction -1) or less urgent (+1) than `p`."""
    levels = sorted(int(x) for x in Priority)
    if direction < 0:
        above = [x for x in levels if x < p]
        return above[-1] if above else p
    below = [x for x in levels if x > p]
    return below[0] if below else p


# -- ETA smoothing --------------------------------------------------------------------------


@dataclass(slots=True)
class _EtaState:
    shown: float
    at: float


class EtaSmoother:
    """Keeps a shown ETA from jumping: an exponential average that may change by at most
    a factor of 1.5 per second of wall time, shown only once the task has run `warmup`
    seconds (before that: "estimating…")."""

    def __init__(self, alpha: float = 0.3, max_ratio: float = 1.5, warmup: float = 3.0) -> None:
        self._alpha = alpha
        self._max_ratio = max_ratio
        self._warmup = warmup
        self._state: dict[int, _EtaState] = {}

    def update(self, task_id: int, eta: float | None, elapsed: float | None, now: float) -> float | None:
        if eta is None or elapsed is None or elapsed < self._warmup:
            return None
        prev = self._state.get(task_id)
        if prev is None:
            self._state[task_id] = _EtaState(eta, now)
            return eta
        dt = max(0.0, now - prev.at)
        expected = max(0.0, prev.shown - dt)  # where the last estimate says we are now
        value = self._alpha * eta + (1 - self._alpha) * expected
        bound = self._max_ratio ** max(1.0, dt)
        lo, hi = expected / bound, max(expected * bound, 1.0)
        value = float(min(max(value, lo), hi))
        self._state[task_id] = _EtaState(value, now)
        return value

    def shown(self, task_id: int, now: float) -> float | None:
        st = self._state.get(task_id)
        if st is None:
            return None
        return max(0.0, st.shown - max(0.0, now - st.at))

    def forget(self, task_id: int) -> None:
        self._state.pop(task_id, None)


# -- payloads --------------------------------------------------------------------------------

SECRET_KEYS = re.compile(
    r"pass(word|wd|phrase)?|secret|token|auth(orization)?|credential|api[-_]?key|cookie|"
    r"private[-_]?key|access[-_]?key|session[-_]?key|signature",
    re.IGNORECASE,
)
MASK = "••••••"


def mask_secrets(value: Any) -> Any:
    """A copy of a JSON value with every value under a secret-looking key replaced."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and SECRET_KEYS.search(k) else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def payload_summary(payload: Any, limit: int = 12) -> list[tuple[str, str]]:
    """(field, value) lines describing a payload, secrets masked, long values shortened."""
    masked = mask_secrets(payload)
    if masked is None:
        return []
    if not isinstance(masked, Mapping):
        return [("payload", _short(masked))]
    out = [(str(k), _short(v)) for k, v in list(masked.items())[:limit]]
    if len(masked) > limit:
        out.append(("…", f"{len(masked) - limit} more fields"))
    return out


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        text = ", ".join(value[:5]) + (f" and {len(value) - 5} more" if len(value) > 5 else "")
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trigger_tag(rec: TaskRecord) -> str:
    """How a schedule's run was started, for its name: "manual" (Run now), "catch-up"
    (after missed runs), or "" (on time, or not a scheduled task)."""
    trig = (rec.tags or {}).get("trigger", "") if rec.schedule_id is not None else ""
    return trig if trig in ("manual", "catch-up") else ""


def display_name(rec: TaskRecord) -> str:
    """The task's name, with its schedule tag: "Nightly backup · manual"."""
    tag = trigger_tag(rec)
    return f"{rec.name} · {tag}" if tag else rec.name
