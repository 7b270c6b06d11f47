"""Schedules: recurring (cron, every N seconds) and one-shot triggers that submit a task of
a kind each time they fire. `engine.schedules` (and `client.schedules`) is the API;
`preview` and `describe` help people read cron expressions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.clock import from_ts
from core.crontime import Trigger, check_cron, describe, preview, zone
from core.errors import InvalidSchedule
from core.store.records import loads
from core.store.schedules import SchedRow
from core.store.tasks import NewTask
from core.types import JSON, IoBudget, KindInfo, RetryPolicy, SubmitResult
from core.validation import MAX_SECONDS, build_task, encode_payload

__all__ = ["Schedule", "ScheduleSpec", "Schedules", "describe", "preview"]

OVERLAP = ("skip", "queue", "replace", "allow")
MISFIRE = ("run_once", "skip", "run_all")
RUN_ALL_CAP = 10
SUBMIT_OPTIONS = (
    "priority",
    "key",
    "on_duplicate",
    "group",
    "tags",
    "label",
    "retry",
    "timeout",
    "ttl",
    "io",
    "fail_fast",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A schedule as stored, with what it did last and will do next."""

    id: int
    name: str | None
    kind: str
    payload: JSON
    cron: str | None
    every: float | None
    at: datetime | None
    tz: str | None
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    overlap: str
    misfire: str
    misfire_grace: float
    jitter: float
    pause_after_failures: int | None
    options: dict[str, Any]
    paused: bool
    ended: bool
    created_at: datetime
    next_fire: datetime | None
    last_fire: datetime | None
    last_task_id: int | None
    last_result: str | None
    last_finished: datetime | None
    run_count: int
    failure_streak: int
    missed_runs: int
    missed_note: str | None  # "missed 2 runs — ran once at 08:00"

    @property
    def trigger_text(self) -> str:
        """The trigger in words: "At 09:00, Monday through Friday", "every 15 min"."""
        if self.cron is not None:
            return describe(self.cron)
        if self.every is not None:
            return f"every {_duration(self.every)}"
        assert self.at is not None
        return f"once at {self.at:%Y-%m-%d %H:%M}"


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """One schedule for add_many: the same arguments as Schedules.add."""

    kind: str
    payload: JSON = None
    cron: str | None = field(default=None, kw_only=True)
    every: float | None = field(default=None, kw_only=True)
    at: datetime | None = field(default=None, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    tz: str | None = field(default=None, kw_only=True)
    start_at: datetime | None = field(default=None, kw_only=True)
    end_at: datetime | None = field(default=None, kw_only=True)
    max_runs: int | None = field(default=None, kw_only=True)
    overlap: str = field(default="skip", kw_only=True)
    misfire: str = field(default="run_once", kw_only=True)
    misfire_grace: float = field(default=60.0, kw_only=True)
    jitter: float = field(default=0.0, kw_only=True)
    pause_after_failures: int | None = field(default=None, kw_only=True)
    options: Mapping[str, Any] = field(default_factory=dict, kw_only=True)  # submit options


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def to_record(row: SchedRow) -> Schedule:
    created = from_ts(row.created_at)
    assert created is not None
    return Schedule(
        id=row.id,
        name=row.name,
        kind=row.kind,
        payload=loads(row.payload_json),
        cron=row.cron,
        every=row.every,
        at=from_ts(row.at),
        tz=row.tz,
        start_at=from_ts(row.start_at),
        end_at=from_ts(row.end_at),
        max_runs=row.max_runs,
        overlap=row.overlap,
        misfire=row.misfire,
        misfire_grace=row.misfire_grace,
        jitter=row.jitter,
        pause_after_failures=row.pause_after_failures,
        options=dict(row.options),
        paused=row.paused,
        ended=row.ended,
        created_at=created,
        next_fire=from_ts(row.next_fire),
        last_fire=from_ts(row.last_fire),
        last_task_id=row.last_task_id,
        last_result=row.last_result,
        last_finished=from_ts(row.last_finished),
        run_count=row.run_count,
        failure_streak=row.failure_streak,
        missed_runs=row.missed_runs,
        missed_note=row.missed_note,
    )


def trigger_of(row: SchedRow) -> Trigger:
    return Trigger(
        cron=row.cron,
        every=row.every,
        at=row.at,
        tz=row.tz,
        start_at=row.start_at,
        end_at=row.end_at,
        created_at=row.created_at,
    )


# -- validation ------------------------------------------------------------------------


def _time(name: str, value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidSchedule(name, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidSchedule(name, "must be timezone-aware (naive datetimes are ambiguous)")
    return value.timestamp()


def _seconds(name: str, value: object, *, positive: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or math.isinf(value)
    ):
        raise InvalidSchedule(name, f"must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise InvalidSchedule(name, f"must be {'> 0' if positive else '>= 0'} seconds, got {value!r}")
    if value > MAX_SECONDS:
        raise InvalidSchedule(name, "must be at most a century")
    return float(value)


def _count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSchedule(name, f"must be None or an int >= 1, got {value!r}")
    return value


def encode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Submit options as JSON (RetryPolicy and IoBudget as dicts)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in SUBMIT_OPTIONS:
            raise InvalidSchedule(
                key, f"is not an option a scheduled task can take (one of {', '.join(SUBMIT_OPTIONS)})"
            )
        if value is None:
            continue
        if key in ("retry", "io") and hasattr(value, "to_json"):
            value = value.to_json()
        out[key] = value
    return out


def decode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(options)
    if isinstance(out.get("retry"), dict):
        out["retry"] = RetryPolicy.from_json(out["retry"])
    if isinstance(out.get("io"), dict):
        out["io"] = IoBudget.from_json(out["io"])
    return out


def build_schedule(spec: ScheduleSpec, *, info: KindInfo | None, now: float) -> SchedRow:
    """Validate a schedule and compute its first fire; raises InvalidSchedule (or
    InvalidSubmission for a bad payload or task option) naming the field."""
    given = [n for n, v in (("cron", spec.cron), ("every", spec.every), ("at", spec.at)) if v is not None]
    if len(given) != 1:
        raise InvalidSchedule(
            "trigger", f"give exactly one of cron=, every= or at= (got {', '.join(given) or 'none'})"
        )
    if spec.cron is not None:
        problems = check_cron(spec.cron)
        if problems:
            raise InvalidSchedule("cron", "; ".join(problems))
    every = _seconds("every", spec.every, positive=True) if spec.every is not None else None
    at = _time("at", spec.at)
    if spec.tz is not None:
        zone(spec.tz)
    start_at, end_at = _time("start_at", spec.start_at), _time("end_at", spec.end_at)
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise InvalidSchedule("end_at", "must be after start_at")
    if spec.overlap not in OVERLAP:
        raise InvalidSchedule("overlap", f"must be one of {', '.join(OVERLAP)}, got {spec.overlap!r}")
    if spec.misfire not in MISFIRE:
        raise InvalidSchedule("misfire", f"must be one of {', '.join(MISFIRE)}, got {spec.misfire!r}")
    if spec.name is not None and (not isinstance(spec.name, str) or len(spec.name) > 200):
        raise InvalidSchedule("name", "must be a string of at most 200 characters")
    options = encode_options(spec.options)
    row = SchedRow(
        kind=spec.kind,
        payload_json=encode_payload(spec.payload),
        created_at=now,
        name=spec.name,
        cron=spec.cron,
        every=every,
        at=at,
        tz=spec.tz,
        start_at=start_at,
        end_at=end_at,
        max_runs=_count("max_runs", spec.max_runs),
        overlap=spec.overlap,
        misfire=spec.misfire,
        misfire_grace=_seconds("misfire_grace", spec.misfire_grace, positive=False),
        jitter=_seconds("jitter", spec.jitter, positive=False),
        pause_after_failures=_count("pause_after_failures", spec.pause_after_failures),
        options=options,
    )
    task_for(row, info=info, now=now, trigger="schedule")  # the task it will submit must be valid
    if at is not None and at < now - row.misfire_grace:
        raise InvalidSchedule("at", "is in the past")
    row.next_fire = trigger_of(row).next_after(now if at is None else min(now, at - 1))
    if row.next_fire is None:
        raise InvalidSchedule("end_at" if end_at is not None else "at", "the schedule would never fire")
    return row


def task_for(row: SchedRow, *, info: KindInfo | None, now: float, trigger: str) -> NewTask:
    """The task a fire of `row` submits (tagged with how it was triggered)."""
    options = decode_options(row.options)
    tags = {**(options.pop("tags", None) or {}), "trigger": trigger}
    label = options.pop("label", None) or row.name
    return build_task(
        row.kind,
        loads(row.payload_json),
        info=info,
        now=now,
        schedule_id=row.id or None,
        tags=tags,
        label=label,
        **options,
    )


# -- the API object ---------------------------------------------------------------------


class Schedules:
    """`engine.schedules`: add, change and inspect schedules. Every change is stored and
    emitted as an event (schedule_added, _updated, _paused, _resumed, _removed)."""

    def __init__(self, backend: Any) -> None:
        self._b = backend  # the engine (or a client) that implements the _sched_* calls

    async def add(
        self,
        kind: str,
        payload: JSON = None,
        *,
        cron: str | None = None,
        every: float | None = None,
        at: datetime | None = None,
        name: str | None = None,
        tz: str | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        max_runs: int | None = None,
        overlap: str = "skip",
        misfire: str = "run_once",
        misfire_grace: float = 60.0,
        jitter: float = 0.0,
        pause_after_failures: int | None = None,
        **submit_options: Any,
    ) -> int:
        """Add a schedule; returns its id. Exactly one trigger: `cron` (5 fields, or 6 with
        seconds first), `every` (seconds, fixed-rate from `start_at` or from now), or `at`
        (once). Other keywords are submit options for its tasks (priority, group, key...)."""
        spec = ScheduleSpec(
            kind,
            payload,
            cron=cron,
            every=every,
            at=at,
            name=name,
            tz=tz,
            start_at=start_at,
            end_at=end_at,
            max_runs=max_runs,
            overlap=overlap,
            misfire=misfire,
            misfire_grace=misfire_grace,
            jitter=jitter,
            pause_after_failures=pause_after_failures,
            options=submit_options,
        )
        return (await self.add_many([spec]))[0]

    async def add_many(self, specs: Iterable[ScheduleSpec]) -> list[int]:
        """Add many schedules in one transaction: all or none."""
        return await self._b._sched_add(list(specs))  # type: ignore[no-any-return]

    async def update(self, schedule_id: int, **changes: Any) -> Schedule:
        """Change any of the arguments of `add`; the next fire is computed anew."""
        return await self._b._sched_update(schedule_id, changes)  # type: ignore[no-any-return]

    async def pause(self, schedule_id: int) -> None:
        """Stop firing (a paused schedule fires nothing until resumed)."""
        await self._b._sched_set_paused(schedule_id, True)

    async def resume(self, schedule_id: int) -> None:
        """Fire again; the next fire is computed from now (no burst of missed runs)."""
        await self._b._sched_set_paused(schedule_id, False)

    async def remove(self, schedule_id: int) -> None:
        """Delete the schedule; its past runs stay in history."""
        await self._b._sched_remove(schedule_id)

    async def run_now(self, schedule_id: int) -> SubmitResult:
        """Submit a run now, tagged manual; the next fire does not move."""
        return await self._b._sched_run_now(schedule_id)  # type: ignore[no-any-return]

    def get(self, schedule_id: int) -> Schedule | None:
        return self._b._sched_get(schedule_id)  # type: ignore[no-any-return]

    def list(self) -> list[Schedule]:
        return self._b._sched_list()  # type: ignore[no-any-return]


def spec_with(row: SchedRow, changes: Mapping[str, Any]) -> ScheduleSpec:
    """The spec of an existing schedule with `changes` applied (for update)."""
    fields_ = {
        "kind",
        "payload",
        "cron",
        "every",
        "at",
        "name",
        "tz",
        "start_at",
        "end_at",
        "max_runs",
        "overlap",
        "misfire",
        "misfire_grace",
        "jitter",
        "pause_after_failures",
    }
    rec = to_record(row)
    base: dict[str, Any] = {f: getattr(rec, f) for f in fields_}
    options = dict(row.options)
    trigger_keys = {"cron", "every", "at"}
    if trigger_keys & set(changes):  # a new trigger replaces the old one
        base.update(cron=None, every=None, at=None)
    for key, value in changes.items():
        if key in fields_:
            base[key] = value
        elif key in SUBMIT_OPTIONS:
            options[key] = value
        else:
            raise InvalidSchedule(key, "is not a schedule field or a task option")
    kind, payload = base.pop("kind"), base.pop("payload")
    return ScheduleSpec(kind, payload, options=encode_options(options), **base)
