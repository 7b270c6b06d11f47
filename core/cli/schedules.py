"""`taskdeck schedule ...`: add, list, show, pause, resume, remove, run and preview schedules."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core import Client, Engine, Schedule, ScheduleNotFound
from core.cli import output as o
from core.cli import parser as p
from core.cli.commands import Command, Context, _hint_no_worker, _now
from core.cli.database import client, control
from core.crontime import preview
from core.schedules import describe

OVERLAP = ["skip", "queue", "replace", "allow"]
MISFIRE = ["run_once", "skip", "run_all"]


def add_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The `schedule` command and its subcommands."""
    sched = add("schedule", "add, list and control recurring and one-shot schedules")
    sub = sched.add_subparsers(dest="schedule_command", metavar="SUBCOMMAND", required=True)

    def sadd(name: str, about: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=about, description=about, parents=[p._common()], allow_abbrev=False)

    a = sadd("add", "add a schedule that submits a task of KIND each time it fires")
    a.add_argument("kind", type=p.text, metavar="KIND")
    trigger = a.add_mutually_exclusive_group(required=True)
    trigger.add_argument("--cron", type=p.text, metavar="EXPR", help="5 fields, or 6 with seconds first")
    trigger.add_argument("--every", type=p.positive_duration, metavar="S", help="fixed rate: 90, 15m, 2h, 1d")
    trigger.add_argument("--at", type=p.moment, metavar="ISO", help="once, at this date-time")
    a.add_argument(
        "--payload",
        type=p.payload,
        default=argparse.SUPPRESS,
        metavar="JSON",
        help="the payload as JSON, or @FILE (default: {})",
    )
    a.add_argument("--name", type=p.text)
    a.add_argument("--tz", type=p.text, metavar="ZONE", help="IANA time zone for --cron (default: local)")
    a.add_argument("--start", type=p.moment, metavar="ISO", help="no fires before this (--every fires at it)")
    a.add_argument("--end", type=p.moment, metavar="ISO", help="no fires after this")
    a.add_argument("--max-runs", type=p.count, metavar="N")
    a.add_argument("--overlap", choices=OVERLAP, default="skip", help="when the previous run is still active")
    a.add_argument("--misfire", choices=MISFIRE, default="run_once", help="when fires were missed")
    a.add_argument("--misfire-grace", type=p.duration, default=60.0, metavar="S")
    a.add_argument("--jitter", type=p.duration, default=0.0, metavar="S")
    a.add_argument("--pause-after-failures", type=p.count, metavar="N")
    a.add_argument("--priority", type=p.priority, metavar="P")
    a.add_argument("--group", type=p.group_name, metavar="G")
    a.add_argument("--label", type=p.text)
    sadd("ls", "list schedules: trigger in words, next and last run")
    for name, about in (
        ("show", "show a schedule and its recent runs"),
        ("pause", "stop a schedule firing"),
        ("resume", "let a paused schedule fire again (from now)"),
        ("rm", "remove a schedule"),
        ("run-now", "submit a run now (tagged manual; the next fire does not move)"),
    ):
        sadd(name, about).add_argument("id", type=p.task_id, metavar="ID")
    pv = sadd("preview", "describe a cron expression and list its next fires")
    pv.add_argument("cron", type=p.text, metavar="EXPR")
    pv.add_argument("--tz", type=p.text, metavar="ZONE")
    pv.add_argument("--count", type=p.count, default=5, metavar="N")


async def schedule(ctx: Context) -> int:
    return await _SUBCOMMANDS[ctx.args.schedule_command](ctx)


async def _add(ctx: Context) -> int:
    a = ctx.args
    options = {
        k: v for k, v in (("priority", a.priority), ("group", a.group), ("label", a.label)) if v is not None
    }
    kwargs: dict[str, Any] = dict(
        cron=a.cron,
        every=a.every,
        at=a.at,
        name=a.name,
        tz=a.tz,
        start_at=a.start,
        end_at=a.end,
        max_runs=a.max_runs,
        overlap=a.overlap,
        misfire=a.misfire,
        misfire_grace=a.misfire_grace,
        jitter=a.jitter,
        pause_after_failures=a.pause_after_failures,
        **options,
    )
    payload = vars(a).get("payload", {})
    added: list[int] = []

    async def apply(x: Engine | Client) -> None:
        added.append(await x.schedules.add(a.kind, payload, **kwargs))

    await control(ctx.path, apply)
    async with client(ctx.path) as c:
        s = c.schedules.get(added[0])
    assert s is not None
    if ctx.json:
        o.out_json(_jsonable(s))
    else:
        o.out(f"schedule {s.id} added: {s.trigger_text}; next run {_when(s.next_fire)}")
        _hint_no_worker(ctx, "it fires")
    return 0


async def _ls(ctx: Context) -> int:
    async with client(ctx.path) as c:
        found = c.schedules.list()
    if ctx.json:
        o.out_json([_jsonable(s) for s in found])
        return 0
    if not found:
        o.out("no schedules ('taskdeck schedule add' adds one)")
        return 0
    now = _now()
    rows = [
        (
            str(s.id),
            _status(s),
            o.short(s.name or s.kind, 24),
            o.short(s.trigger_text, 40),
            _when(s.next_fire, now) if not (s.paused or s.ended) else "—",
            _last(s, now),
            str(s.run_count),
            s.missed_note or "",
        )
        for s in found
    ]
    for line in o.table(
        ["ID", "STATUS", "NAME", "TRIGGER", "NEXT", "LAST", "RUNS", "MISSED"], rows, right=(0, 6)
    ):
        o.out(line.rstrip())
    return 0


async def _show(ctx: Context) -> int:
    async with client(ctx.path) as c:
        s = c.schedules.get(ctx.args.id)
        if s is None:
            raise ScheduleNotFound(ctx.args.id)
        runs = await c.history(schedule_id=s.id, limit=10)
        active = c.tasks(schedule_id=s.id)
    if ctx.json:
        o.out_json({**_jsonable(s), "active": o.jsonable(active), "recent": o.jsonable(runs)})
        return 0
    now = _now()
    fields = [
        ("status", _status(s)),
        ("kind", s.kind),
        ("trigger", s.trigger_text),
        ("cron", s.cron),
        ("every", o.seconds_text(s.every) if s.every else None),
        ("time zone", s.tz or "local"),
        ("next run", _when(s.next_fire, now) if not (s.paused or s.ended) else None),
        ("last run", _last(s, now)),
        ("runs", str(s.run_count)),
        ("missed", s.missed_note),
        ("overlap", s.overlap),
        ("misfire", f"{s.misfire} (grace {o.seconds_text(s.misfire_grace)})"),
        ("payload", o.compact(s.payload)),
    ]
    o.out(f"schedule {s.id}" + (f"  {s.name!r}" if s.name else ""))
    for k, v in fields:
        if v:
            o.out(f"  {k:<10} {v}")
    o.out(f"active runs ({len(active)}):")
    for line in o.task_table(active, now)[1:] if active else ["  none"]:
        o.out(line)
    o.out(f"recent runs ({len(runs)}):")
    for line in o.history_table(runs, now)[1:] if runs else ["  none"]:
        o.out(line)
    return 0


def _control(verb: str, done: str) -> Command:
    async def command(ctx: Context) -> int:
        sid = ctx.args.id
        made: list[Any] = []

        async def apply(x: Engine | Client) -> None:
            made.append(await getattr(x.schedules, verb)(sid))

        now = await control(ctx.path, apply)
        if ctx.json:
            extra = {"task_id": made[0].id} if verb == "run_now" and made else {}
            o.out_json({"schedule": sid, "action": verb, "applied": now, **extra})
        elif verb == "run_now":
            o.out(f"schedule {sid}: task {made[0].id} submitted (manual run)")
        else:
            o.out(
                f"schedule {sid} {done}"
                if now
                else f"{verb} requested for schedule {sid} (the running worker applies it)"
            )
        return 0

    return command


async def _preview(ctx: Context) -> int:
    a = ctx.args
    times = preview(a.cron, a.tz, a.count or 5)
    text = describe(a.cron)
    if ctx.json:
        o.out_json({"cron": a.cron, "description": text, "next": [t.isoformat() for t in times]})
        return 0
    o.out(text)
    for t in times:
        o.out(f"  {t:%a %Y-%m-%d %H:%M:%S %Z}")
    return 0


def _status(s: Schedule) -> str:
    return "ended" if s.ended else "paused" if s.paused else "active"


def _when(t: datetime | None, now: datetime | None = None) -> str:
    if t is None:
        return "none"
    return f"{o.local(t)} ({o.ago(t, now or _now())})"


def _last(s: Schedule, now: datetime) -> str:
    if s.last_result is None:
        return "never" if s.last_fire is None else f"fired {o.ago(s.last_fire, now)}"
    return f"{s.last_result} {o.ago(s.last_finished, now)}"


def _jsonable(s: Schedule) -> dict[str, Any]:
    return {**o.jsonable(s), "trigger_text": s.trigger_text}


_SUBCOMMANDS: dict[str, Command] = {
    "add": _add,
    "ls": _ls,
    "show": _show,
    "pause": _control("pause", "paused"),
    "resume": _control("resume", "resumed"),
    "rm": _control("remove", "removed"),
    "run-now": _control("run_now", "run"),
    "preview": _preview,
}
