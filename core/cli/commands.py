"""The subcommands of `taskdeck`. Each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core import (
    Client,
    Engine,
    Event,
    KindInfo,
    RetryPolicy,
    SubmitOutcome,
    SubmitResult,
    TaskNotFound,
    TaskRecord,
    TaskState,
)
from core.cli import output as o
from core.cli.database import client, control, engine_running
from core.cli.errors import UsageError
from core.cli.worker import run as run_worker
from core.jobs import defaults as builtin_defaults
from core.jobs import register_builtin
from core.jobs import validate as validate_builtin
from core.resources import RESOURCES

POLL_SECONDS = 0.2
NAME_CACHE = 10_000


@dataclass(frozen=True, slots=True)
class Context:
    path: Path
    json: bool
    args: argparse.Namespace


Command = Callable[[Context], Coroutine[Any, Any, int]]


def _now() -> datetime:
    return datetime.now().astimezone()


def _hint_no_worker(ctx: Context, what: str) -> None:
    """Tell a person at a terminal that nothing will run the task (never a script)."""
    if sys.stderr.isatty() and not engine_running(ctx.path):
        o.err(f"no worker is running on {ctx.path}; {what} once one runs ('taskdeck worker')")


# -- submitting ------------------------------------------------------------------------


async def submit(ctx: Context) -> int:
    a = ctx.args
    # A built-in kind's own checks (paths exist, patterns are safe) run here, before the
    # task is stored: the worker that runs it may be another process.
    payload = validate_builtin(a.kind, vars(a).get("payload", {}))
    given = {"group": a.group, "key": a.key, "label": a.label}
    opts = {**builtin_defaults(a.kind, payload), **{k: v for k, v in given.items() if v is not None}}
    async with client(ctx.path) as c:
        retry = None if a.max_retries is None else _retry_policy(c, a.kind, a.max_retries)
        res = await c.submit(
            a.kind,
            payload,
            priority=a.priority,
            key=opts.get("key"),
            on_duplicate=a.on_duplicate,
            delay=a.delay,
            run_at=a.run_at,
            group=opts.get("group"),
            tags=dict(a.tag) if a.tag else None,
            label=opts.get("label"),
            retry=retry,
            timeout=a.timeout,
            ttl=a.ttl,
            fail_fast=a.fail_fast,
        )
    _print_submitted(ctx, res, opts.get("key"))
    if res.outcome is SubmitOutcome.REJECTED:
        o.err(f"not submitted: task {res.id} with key {opts.get('key')!r} is active (--on-duplicate reject)")
        return 1
    if res.outcome is SubmitOutcome.INSERTED:
        _hint_no_worker(ctx, "it will start")
    return 0


def _retry_policy(c: Client, kind: str, max_retries: int) -> RetryPolicy:
    """The kind's own retry policy with another retry count."""
    known = {k.kind: k for k in c.kinds()}
    base = known[kind].retry if kind in known else RetryPolicy()
    return dataclasses.replace(base, max_retries=max_retries)


def _print_submitted(ctx: Context, res: SubmitResult, key: str | None) -> None:
    if ctx.json:
        o.out_json({"id": res.id, "outcome": res.outcome})
        return
    active = f"task {res.id} with key {key!r} is already active"
    texts = {
        SubmitOutcome.INSERTED: f"task {res.id} submitted",
        SubmitOutcome.DUPLICATE: f"{active}; nothing submitted",
        SubmitOutcome.UPGRADED: f"{active}; its priority was raised",
        SubmitOutcome.REQUEUED: f"{active} and running; it will run once more after it ends",
        SubmitOutcome.SUPERSEDED: f"task {res.id} submitted, superseding the task with key {key!r}",
    }
    if res.outcome in texts:
        o.out(texts[res.outcome])


async def retry(ctx: Context) -> int:
    async with client(ctx.path) as c:
        res = await c.retry(ctx.args.id)
    if ctx.json:
        o.out_json({"id": res.id, "outcome": res.outcome, "retry_of": ctx.args.id})
    else:
        o.out(f"task {ctx.args.id} submitted again as task {res.id}")
    _hint_no_worker(ctx, "it will start")
    return 0


# -- queries ---------------------------------------------------------------------------


async def ls(ctx: Context) -> int:
    a = ctx.args
    async with client(ctx.path) as c:
        recs = c.tasks(states=a.state, kind=a.kind, group=a.group, limit=a.limit + 1 if a.limit else None)
    table = functools.partial(o.task_table, tree=a.tree)
    return _print_tasks(ctx, recs, a.limit, table, "no active tasks")


async def history(ctx: Context) -> int:
    a = ctx.args
    async with client(ctx.path) as c:
        recs = await c.history(
            states=a.state,
            kind=a.kind,
            since=a.since,
            search=a.search,
            limit=a.limit + 1 if a.limit else None,
        )
    return _print_tasks(ctx, recs, a.limit, o.history_table, "no finished tasks")


def _print_tasks(
    ctx: Context, recs: list[TaskRecord], limit: int, table: Callable[..., list[str]], none: str
) -> int:
    more = bool(limit) and len(recs) > limit
    recs = recs[:limit] if limit else recs
    if ctx.json:
        o.out_json(recs)
        return 0
    for line in table(recs, _now()) if recs else [none]:
        o.out(line)
    if more:
        o.out(f"(only the first {limit} are shown; --limit N shows more, --limit 0 all)")
    return 0


async def show(ctx: Context) -> int:
    task_id, n = ctx.args.id, ctx.args.lines
    async with client(ctx.path) as c:
        rec = c.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        events = c.events_of(task_id)
        every_line = c.logs(task_id)
        tree = _subtree(c, rec)
        deps = _states(c, c.dependencies(task_id))
        needed_by = _states(c, c.dependents(task_id))
    logs = every_line[-n:] if n else []
    if ctx.json:
        o.out_json({
            **o.jsonable(rec), "events": o.jsonable(events), "logs": o.jsonable(logs),
            "children": [r.id for d, r in tree if d == 1],
            "dependencies": [i for i, _ in deps], "dependents": [i for i, _ in needed_by],
        })  # fmt: skip
    else:
        lines = o.show_lines(rec, events, logs, len(every_line), _now(), tree, deps, needed_by)
        for line in lines:
            o.out(line)
    return 0


TREE_LIMIT = 200  # rows of a subtree `show` prints


def _subtree(c: Client, rec: TaskRecord) -> list[tuple[int, TaskRecord]]:
    out: list[tuple[int, TaskRecord]] = []

    def walk(r: TaskRecord, depth: int) -> None:
        out.append((depth, r))
        for kid in c.children(r.id):
            if len(out) >= TREE_LIMIT:
                return
            walk(kid, depth + 1)

    walk(rec, 0)
    return out


def _states(c: Client, ids: list[int]) -> list[tuple[int, str]]:
    out = []
    for i in ids:
        r = c.get(i)
        out.append((i, r.state.value if r else "gone from history"))
    return out


async def kinds(ctx: Context) -> int:
    found: dict[str, KindInfo] = {}
    if not engine_running(ctx.path):
        # No engine publishes its kinds now: show the built-in ones as this version has them.
        scratch = await Engine.open(":memory:")
        try:
            register_builtin(scratch)
            found = {k.kind: k for k in scratch.kinds()}
        finally:
            await scratch.stop(grace=0)
    async with client(ctx.path) as c:
        for info in c.kinds():
            found.setdefault(info.kind, info)
    infos = [found[k] for k in sorted(found)]
    if ctx.json:
        o.out_json(infos)
        return 0
    for i, info in enumerate(infos):
        if i:
            o.out()
        for line in o.kind_lines(info):
            o.out(line)
    return 0


async def limits(ctx: Context) -> int:
    a = ctx.args
    has_limit = hasattr(a, "limit")
    has_bandwidth = hasattr(a, "bandwidth")
    if has_limit != (a.group is not None):
        raise UsageError("--group and --limit go together: --group G --limit N|none")
    if a.until is not None and not has_bandwidth:
        raise UsageError("--until goes with --bandwidth: --bandwidth RATE --until 17:00")
    schedule = a.bandwidth_schedule
    if schedule and None in schedule and len(schedule) > 1:
        raise UsageError("--bandwidth-schedule none removes the schedule: give it alone")
    changes: list[str] = []
    if a.concurrency is not None:
        changes.append(f"max concurrency {a.concurrency}")
    if has_limit:
        changes.append(f"group {a.group} limit {'none' if a.limit is None else a.limit}")
    for scope, rate, burst in a.rate or ():
        changes.append(
            f"{scope} rate {'none' if rate is None else f'{rate:g}/s'}"
            + (f" burst {burst:g}" if burst else "")
        )
    if has_bandwidth:
        changes.append(
            f"bandwidth {o.rate_text(a.bandwidth)}" + (f" {o.until_text(a.until)}" if a.until else "")
        )
    if schedule:
        changes.append(
            "no bandwidth schedule"
            if schedule == [None]
            else f"bandwidth schedule of {o.plural(len(schedule), 'window')}"
        )
    for resource, bps in a.io_capacity or ():
        changes.append(f"{resource} capacity {'learned' if bps is None else o.rate_text(bps)}")
    for group, weight in a.weight or ():
        changes.append(f"group {group} weight {'default' if weight is None else f'{weight:g}'}")
    for group, n in a.min_slots or ():
        changes.append(f"group {group} minimum {n or 0} slots")
    if not changes:
        return await _show_limits(ctx)

    async def apply(x: Engine | Client) -> None:
        if a.concurrency is not None:
            await x.set_max_concurrency(a.concurrency)
        if has_limit:
            await x.set_group_limit(a.group, a.limit)
        for scope, rate, burst in a.rate or ():
            await x.set_rate_limit(scope, rate, burst)
        if has_bandwidth:
            await x.set_bandwidth_limit(a.bandwidth, until=a.until)
        if schedule:
            await x.set_bandwidth_schedule([w for w in schedule if w is not None])
        for resource, bps in a.io_capacity or ():
            await x.set_io_capacity(resource, bps)
        for group, weight in a.weight or ():
            await x.set_group_weight(group, weight)
        for group, n in a.min_slots or ():
            await x.set_group_min_slots(group, n)

    now = await control(ctx.path, apply)
    if ctx.json:
        o.out_json({"changes": changes, "applied": now})
    else:
        o.out(
            ("set " if now else "requested ")
            + ", ".join(changes)
            + ("" if now else " (the running worker applies it)")
        )
    return 0


async def _show_limits(ctx: Context) -> int:
    async with client(ctx.path) as c:
        snap = c.snapshot()
        capacities = c.io_capacity()
    bw = snap.bandwidth
    assert bw is not None
    if ctx.json:
        o.out_json(
            {
                "max_concurrency": snap.max_concurrency,
                "paused_all": snap.paused_all,
                "groups": snap.groups,
                "rate_limits": {k: {"per_second": r, "burst": b} for k, (r, b) in snap.rate_limits.items()},
                "bandwidth": {
                    **{
                        k: getattr(bw, k)
                        for k in ("limit", "source", "base", "override", "override_until", "tz")
                    },
                    "schedule": [w.to_json() for w in bw.schedule],
                },
                "io_capacity": capacities,
                "group_shares": snap.group_shares,
            }
        )
        return 0
    o.out(f"max concurrency  {snap.max_concurrency}")
    o.out(f"all paused       {'yes' if snap.paused_all else 'no'}")
    o.out(f"bandwidth        {o.bandwidth_text(bw)}")
    for w in bw.schedule:
        o.out(f"  {o.window_text(w)}")
    parts = [f"{r} {o.rate_text(v)}" for r, v in capacities.items()]
    learned = [r for r in RESOURCES if r not in capacities]
    if learned:
        parts.append(", ".join(learned) + " learned")
    o.out(f"IO capacity      {', '.join(parts)}")
    shares = snap.group_shares
    rows = [
        (
            g.name,
            "none" if g.limit is None else str(g.limit),
            f"{shares[g.name]['weight']:g}" if g.name in shares else "1",
            str(int(shares[g.name]["min_slots"])) if g.name in shares else "0",
            "yes" if g.paused else "no",
            str(sum(g.counts.values())),
        )
        for g in snap.groups
    ]
    rows += [
        (name, "none", f"{s['weight']:g}", str(int(s["min_slots"])), "no", "0")
        for name, s in shares.items()
        if name not in {g.name for g in snap.groups}
    ]
    if rows:
        o.out()
        for line in o.table(
            ["GROUP", "LIMIT", "WEIGHT", "MIN", "PAUSED", "ACTIVE"], rows, right=(1, 2, 3, 5)
        ):
            o.out(line)
    if snap.rate_limits:
        o.out()
        rate_rows = [
            (scope, f"{rate:g}/s", f"{burst:g}" if burst else f"{max(1.0, rate):g}")
            for scope, (rate, burst) in sorted(snap.rate_limits.items())
        ]
        for line in o.table(["RATE LIMIT", "RATE", "BURST"], rate_rows, right=(1, 2)):
            o.out(line)
    return 0


# -- control ---------------------------------------------------------------------------


def _task_control(verb: str, done: str) -> Command:
    async def command(ctx: Context) -> int:
        task_id = ctx.args.id

        async def apply(x: Engine | Client) -> None:
            await getattr(x, verb)(task_id)

        now = await control(ctx.path, apply)
        if ctx.json:
            o.out_json({"id": task_id, "action": verb, "applied": now})
        else:
            o.out(
                f"task {task_id} {done}"
                if now
                else f"{verb} requested for task {task_id} (the running worker applies it)"
            )
        return 0

    return command


def _global_control(verb: str, done: str) -> Command:
    async def command(ctx: Context) -> int:
        now = await control(ctx.path, lambda x: getattr(x, verb)())
        name = verb.replace("_", "-")
        if ctx.json:
            o.out_json({"action": name, "applied": now})
        else:
            o.out(done if now else f"{name} requested (the running worker applies it)")
        return 0

    return command


# -- following -------------------------------------------------------------------------


async def wait(ctx: Context) -> int:
    task_id = ctx.args.id
    async with client(ctx.path) as c:
        if c.get(task_id) is None:
            raise TaskNotFound(task_id)
        _hint_no_worker(ctx, "the task will progress")
        rec = await c.wait(task_id, timeout=ctx.args.timeout)
    if ctx.json:
        o.out_json(rec)
    else:
        o.out(f"task {task_id} {rec.state.value}" + (f": {rec.error}" if rec.error else ""))
    return 0 if rec.state is TaskState.COMPLETED else 1


async def logs(ctx: Context) -> int:
    task_id = ctx.args.id
    async with client(ctx.path) as c:
        last: int | None = None
        while True:
            rec = c.get(task_id)  # read before the lines, so an ended task's last lines are in them
            if rec is None:
                raise TaskNotFound(task_id)
            for line in c.logs(task_id, since=last):
                if ctx.json:
                    o.out_json(line)
                else:
                    o.out(o.log_line(line))
                last = line.id
            sys.stdout.flush()
            if not ctx.args.follow or rec.is_terminal:
                return 0
            await asyncio.sleep(POLL_SECONDS)


async def watch(ctx: Context) -> int:
    a = ctx.args
    if a.count == 0:
        return 0
    seen = 0
    async with client(ctx.path) as c, aclosing(_stream(c, a.since)) as events:
        names: dict[int, str | None] = {}
        async for ev in events:
            if ctx.json:
                o.out_json(ev)
            else:
                o.out(o.event_line(ev, _name(c, names, ev.task_id)))
            sys.stdout.flush()
            seen += 1
            if a.count is not None and seen >= a.count:
                break
    return 0


def _stream(c: Client, since: int | None) -> AsyncGenerator[Event, None]:
    return c.events(since=since)  # an async generator: `watch --count` closes it early


def _name(c: Client, cache: dict[int, str | None], task_id: int | None) -> str | None:
    """A task's name for event lines, read once per task."""
    if task_id is None:
        return None
    if task_id not in cache:
        if len(cache) > NAME_CACHE:
            cache.clear()
        rec = c.get(task_id)
        cache[task_id] = rec.name if rec else None
    return cache[task_id]


async def worker(ctx: Context) -> int:
    return await run_worker(ctx.path, verbose=getattr(ctx.args, "verbose", False))


COMMANDS: dict[str, Command] = {
    "submit": submit,
    "ls": ls,
    "history": history,
    "show": show,
    "cancel": _task_control("cancel", "cancelled"),
    "pause": _task_control("pause", "paused"),
    "resume": _task_control("resume", "resumed"),
    "retry": retry,
    "wait": wait,
    "logs": logs,
    "kinds": kinds,
    "pause-all": _global_control("pause_all", "all tasks paused"),
    "resume-all": _global_control("resume_all", "all tasks resumed"),
    "limits": limits,
    "watch": watch,
    "worker": worker,
}
