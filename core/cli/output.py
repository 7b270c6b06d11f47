"""Turning core's records into text lines and JSON-ready values for the command line."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from core import Event, KindInfo, LogLine, Priority, TaskRecord, TaskState
from core.resources import human_rate

NAME_WIDTH = 40
DATA_WIDTH = 160


def out(line: str = "") -> None:
    """One line on stdout (the command's output)."""
    sys.stdout.write(line + "\n")


def err(line: str) -> None:
    """One line on stderr, prefixed like every message of the command."""
    sys.stderr.write(f"taskdeck: {line}\n")


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a record (TaskRecord, Event, KindInfo, ...): datetimes as ISO
    8601, enums as their values, tuples as lists, non-finite floats as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def out_json(value: Any) -> None:
    out(json.dumps(jsonable(value), ensure_ascii=False))


# -- small values ----------------------------------------------------------------------


def priority_text(p: int) -> str:
    try:
        return Priority(p).name.lower()
    except ValueError:
        return str(p)


def seconds_text(seconds: float | None) -> str:
    """A duration in the largest unit that keeps it short: 0.4 s, 12 s, 3 min, 2 h 5 min."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d"


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    delta = (now - when).total_seconds()
    return (
        "now"
        if abs(delta) < 1
        else (f"{seconds_text(delta)} ago" if delta > 0 else f"in {seconds_text(-delta)}")
    )


def local(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def clock_time(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S")


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def state_text(rec: TaskRecord, now: datetime | None = None) -> str:
    """The state, with why a task is paused or when a waiting one may start."""
    if rec.pause_reasons:
        return f"{rec.state.value}:{','.join(rec.pause_reasons)}"
    run_at = rec.run_at if rec.state is TaskState.PENDING else None
    if now is not None and run_at is not None and (run_at - now).total_seconds() >= 1:
        return f"{rec.state.value}, {ago(run_at, now)}"
    return rec.state.value


def attempts_text(rec: TaskRecord) -> str:
    if rec.max_retries is None:
        return f"attempt {rec.attempt}"
    return f"attempt {rec.attempt} of {rec.max_retries + 1}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def compact(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(", ", ": "))


# -- tables ----------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    """Aligned columns; the columns in `right` are right-aligned, the last is not padded."""
    rows = [list(r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    flush_right = set(right)
    lines = []
    for r in [list(headers), *rows]:
        cells = [
            c.rjust(w) if i in flush_right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def tree_order(recs: Sequence[TaskRecord]) -> list[tuple[int, TaskRecord]]:
    """(depth, record) with each task's children right after it; tasks whose parent is not
    among `recs` are roots, in the order given."""
    ids = {r.id for r in recs}
    kids: dict[int, list[TaskRecord]] = {}
    for r in recs:
        if r.parent_id in ids:
            kids.setdefault(r.parent_id, []).append(r)
    out: list[tuple[int, TaskRecord]] = []

    def walk(r: TaskRecord, depth: int) -> None:
        out.append((depth, r))
        for k in sorted(kids.get(r.id, []), key=lambda k: k.id):
            walk(k, depth + 1)

    for r in recs:
        if r.parent_id not in ids:
            walk(r, 0)
    return out


def task_table(recs: Sequence[TaskRecord], now: datetime, tree: bool = False) -> list[str]:
    ordered = tree_order(recs) if tree else [(0, r) for r in recs]
    rows = [
        (
            str(r.id),
            state_text(r, now),
            priority_text(r.priority),
            short("  " * depth + ("└ " if depth else "") + r.name, NAME_WIDTH),
            percent(r.progress),
            ago(r.created_at, now),
        )
        for depth, r in ordered
    ]
    return table(["ID", "STATE", "PRI", "NAME", "PROGRESS", "AGE"], rows, right=(0, 4))


def history_table(recs: Sequence[TaskRecord], now: datetime) -> list[str]:
    rows = [
        (
            str(r.id),
            r.state.value,
            priority_text(r.priority),
            short(r.name, NAME_WIDTH),
            seconds_text(r.duration),
            ago(r.finished_at, now),
        )
        for r in recs
    ]
    return table(["ID", "STATE", "PRI", "NAME", "DURATION", "ENDED"], rows, right=(0, 4))


# -- events and logs -------------------------------------------------------------------


def event_data_text(ev: Event) -> str:
    parts = []
    for k, v in ev.data.items():
        if k == "at" and isinstance(v, int | float):  # retrying: when the next attempt starts
            v = clock_time(datetime.fromtimestamp(v).astimezone())
        parts.append(f"{k}={v if isinstance(v, str) else compact(v)}")
    return short(" ".join(parts), DATA_WIDTH)


def event_line(ev: Event, name: str | None = None) -> str:
    """`12:00:01  #42  started  task 5 (demo.sleep)  attempt=2`."""
    subject = ""
    if ev.task_id is not None:
        subject = f"task {ev.task_id}" + (f" ({short(name, NAME_WIDTH)})" if name else "")
    elif ev.schedule_id is not None:
        subject = f"schedule {ev.schedule_id}"
    if ev.scope:
        subject = f"{subject} [{ev.scope}]".strip()
    seq = f"#{ev.seq}" if ev.seq is not None else "-"
    parts = (f"{clock_time(ev.at)}  {seq:>5}  {ev.kind.value:<10}", subject, event_data_text(ev))
    return "  ".join(p for p in parts if p)


def log_line(line: LogLine) -> str:
    return f"{clock_time(line.at)}  {line.level:<7}  {line.message}"


# -- show ------------------------------------------------------------------------------


def show_lines(
    rec: TaskRecord,
    events: Sequence[Event],
    logs: Sequence[LogLine],
    log_total: int,
    now: datetime,
    tree: Sequence[tuple[int, TaskRecord]] = (),
    deps: Sequence[tuple[int, str]] = (),
    needed_by: Sequence[tuple[int, str]] = (),
) -> list[str]:
    title = f"task {rec.id}  {rec.kind}" + (f"  {rec.label!r}" if rec.label else "")
    state = state_text(rec) + f" ({attempts_text(rec)})"
    fields: list[tuple[str, str | None]] = [
        ("state", state),
        ("why", rec.wait_reason),
        ("priority", f"{priority_text(rec.priority)} ({rec.priority})"),
        ("group", rec.group),
        ("tags", ", ".join(f"{k}={v}" for k, v in sorted(rec.tags.items())) or None),
        ("key", rec.key),
        ("progress", _progress_text(rec)),
        ("created", f"{local(rec.created_at)} ({ago(rec.created_at, now)})"),
        ("run at", f"{local(rec.run_at)} ({ago(rec.run_at, now)})" if rec.run_at else None),
        ("started", local(rec.started_at) if rec.started_at else None),
        ("finished", local(rec.finished_at) if rec.finished_at else None),
        ("duration", seconds_text(rec.duration) if rec.duration is not None else None),
        ("timeout", seconds_text(rec.timeout) if rec.timeout else None),
        ("ttl", seconds_text(rec.ttl) if rec.ttl else None),
        ("parent", str(rec.parent_id) if rec.parent_id else None),
        ("schedule", str(rec.schedule_id) if rec.schedule_id else None),
        ("retry of", f"task {rec.retry_of}" if rec.retry_of else None),
        ("io", _io_text(rec)),
        ("payload", compact(rec.payload)),
        ("result", compact(rec.result) if rec.result is not None else None),
        ("error", rec.error),
    ]
    lines = [title] + [f"  {k:<9} {v}" for k, v in fields if v]
    if rec.traceback:
        lines += ["  traceback:"] + [f"    {t}" for t in rec.traceback.rstrip().splitlines()]
    if tree and len(tree) > 1:
        lines.append("tree:")
        lines += [
            f"  {'  ' * depth}#{r.id} {r.name}  {state_text(r, now)}  {percent(r.progress)}".rstrip()
            for depth, r in tree
        ]
    if deps:
        lines.append("depends on: " + ", ".join(f"#{i} ({s})" for i, s in deps))
    if needed_by:
        lines.append("needed by: " + ", ".join(f"#{i} ({s})" for i, s in needed_by))
    lines.append(f"events ({len(events)}):")
    lines += [f"  {event_line(e)}" for e in events] or ["  none"]
    shown = "" if len(logs) == log_total else f", the last {len(logs)} shown"
    lines.append(f"log ({plural(log_total, 'line')}{shown}):" if log_total else "log: empty")
    lines += [f"  {log_line(line)}" for line in logs]
    return lines


def _progress_text(rec: TaskRecord) -> str | None:
    if rec.progress is None and rec.progress_message is None:
        return None
    parts = [percent(rec.progress)]
    if rec.bytes_done is not None and rec.bytes_total is not None:
        parts.append(f"{rec.bytes_done} of {rec.bytes_total}")
    if rec.progress_message:
        parts.append(rec.progress_message)
    if rec.speed:
        parts.append(f"{rec.speed:.0f}/s")
    if rec.eta is not None and not rec.is_terminal:
        parts.append(f"ETA {seconds_text(rec.eta)}")
    return "  ".join(parts)


def _io_text(rec: TaskRecord) -> str | None:
    io = rec.io
    pairs = [
        ("read", io.read),
        ("written", io.written),
        ("sent", io.sent),
        ("received", io.received),
    ]
    return ", ".join(f"{k} {v} B" for k, v in pairs if v) or None


# -- kinds -----------------------------------------------------------------------------


def kind_lines(info: KindInfo) -> list[str]:
    lines = [f"{info.kind}" + (f"  {info.description}" if info.description else "")]
    defaults = [
        f"priority {priority_text(info.priority)}",
        f"{info.retry.max_retries} retries",
        f"runs in {info.run_in}",
    ]
    if info.group:
        defaults.append(f"group {info.group}")
    if info.timeout:
        defaults.append(f"timeout {seconds_text(info.timeout)}")
    if info.ttl:
        defaults.append(f"ttl {seconds_text(info.ttl)}")
    lines.append(f"  defaults: {', '.join(defaults)}")
    lines += [f"  {line}" for line in schema_lines(info.schema)]
    return lines


def schema_lines(schema: Mapping[str, Any] | None) -> list[str]:
    if not schema:
        return ["payload: any JSON (no schema)"]
    props = schema.get("properties")
    kind = schema.get("type")
    nullable = isinstance(kind, list) and sorted(map(str, kind)) == ["null", "object"]
    if (kind != "object" and not nullable) or not isinstance(props, Mapping):
        return [f"payload schema: {compact(schema)}"]
    required = set(schema.get("required", ()))
    rows = [
        (
            ("* " if name in required else "  ") + name,
            _type_text(prop),
            str(prop.get("description", "")),
        )
        for name, prop in props.items()
        if isinstance(prop, Mapping)
    ]
    head = f"payload (an object{' or null' if nullable else ''}; * required" + (
        "" if schema.get("additionalProperties", True) else "; no other fields"
    )
    return [head + "):"] + [f"  {line}" for line in table(["FIELD", "TYPE", "DESCRIPTION"], rows)[1:]]


def _type_text(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + "|".join(compact(v) for v in prop["enum"])
    text = str(prop.get("type", "any"))
    if isinstance(prop.get("type"), list):
        text = "|".join(map(str, prop["type"]))
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None or high is not None:
        text += f" {'' if low is None else low}..{'' if high is None else high}"
    if "maxLength" in prop:
        text += f" (≤{prop['maxLength']} chars)"
    if "default" in prop:
        text += f" = {compact(prop['default'])}"
    return text


def rate_text(bps: float | None) -> str:
    """Bytes per second as people read them: 1.5 MB/s (None: unlimited)."""
    return "unlimited" if bps is None else human_rate(bps)


def until_text(when: datetime | float) -> str:
    """The end of something temporary: "until 17:00" or "for 2 h"."""
    if isinstance(when, datetime):
        return f"until {clock_time(when)}"
    return f"for {seconds_text(when)}"


def window_text(w: Any) -> str:
    """A bandwidth schedule window: "mon-fri 09:00-17:00  1 MB/s"."""
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    days = sorted(w.days)
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        day_text = f"{names[days[0]]}-{names[days[-1]]}"
    else:
        day_text = ",".join(names[d] for d in days)
    end = "24:00" if (w.end.hour, w.end.minute) == (0, 0) else f"{w.end:%H:%M}"
    return f"{day_text} {w.start:%H:%M}-{end}  {rate_text(w.bps)}"


def bandwidth_text(bw: Any) -> str:
    now = rate_text(bw.limit)
    if bw.source == "schedule":
        return f"{now} (schedule{', ' + bw.tz if bw.tz else ''}; otherwise {rate_text(bw.base)})"
    if bw.source.startswith("until"):
        return f"{now} {bw.source} (then {'the schedule' if bw.schedule else rate_text(bw.base)})"
    return now + (f" (schedule{', ' + bw.tz if bw.tz else ''} below)" if bw.schedule else "")
