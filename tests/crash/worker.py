"""A worker process for crash tests: opens an Engine, runs a load, and is killed.

    python -m tests.crash.worker DB SCENARIO [options]

It prints one marker line per fact the killer may rely on, flushed at once:

    OPENED <resumed> <restarted> <failed> <finalized>   Engine.open returned
    READY                                 the engine is started
    ACK <id>                              a submit returned (the task is committed)
    BATCH <tag> <n>                       a submit_many of n tasks is about to be awaited
    ACKMANY <first> <last> <tag>          that submit_many returned (ids first..last)
    ACKBATCH <tag>                        same, after one ACK per id (ids not consecutive)
    RUNNING <id> <attempt> <first step>   a handler started
    CHECKPOINT <id> <step>                ctx.checkpoint({"step": step}) returned
    PAUSE <id> / RESUME <id>              engine.pause / engine.resume returned
    DONE <id> <event>                     (--events) a terminal event was committed

Scenarios: submits, burst, running, serve, checkpoint, mixed, pause (see SCENARIOS). Every
scenario runs until the process is killed (or --max-seconds pass, a safety net); the
worker also exits on its own when its parent goes away.

The kinds are defined in `register_kinds` so that tests can register the very same
handlers in the engine they reopen in-process (with `fast=True`: no sleeps).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from collections.abc import Callable
from typing import Any

from core import Engine, EngineConfig, EventKind, RetryPolicy, Submission, TaskdeckError

Emit = Callable[[str], None]

TERMINAL_EVENTS = frozenset(
    {EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED, EventKind.EXPIRED,
     EventKind.SUPERSEDED, EventKind.DEPENDENCY_FAILED}
)  # fmt: skip
HANG_SECONDS = 3600.0  # the "first_delay" of a task that must still be running when killed
FLAKY_RETRY = RetryPolicy.fixed(max_retries=3, delay=0.05)


def engine_config(concurrency: int = 4) -> EngineConfig:
    """The configuration every crash test and the soak use: keep all history."""
    return EngineConfig(max_concurrency=concurrency, retention_keep=None, retention_days=None,
                        preempt_grace=1.0)  # fmt: skip


class Stdout:
    """Prints marker lines (flushed at once) and remembers which handlers started."""

    def __init__(self) -> None:
        self.started: set[int] = set()

    def __call__(self, line: str) -> None:
        if line.startswith("RUNNING "):
            self.started.add(int(line.split()[1]))
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):  # the parent is gone: nobody needs us
            os._exit(3)

    async def wait_started(self, *ids: int) -> None:
        while not set(ids) <= self.started:
            await asyncio.sleep(0.002)


def _ignore(line: str) -> None:
    return None


def append_line(path: str, line: str) -> None:
    """Append one line with a single O_APPEND write (it survives a SIGKILL of the writer)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def register_kinds(engine: Engine, emit: Emit = _ignore, *, fast: bool = False) -> None:
    """noop, step (N checkpointed steps, each recorded in the payload's side file), flaky
    (its first attempt fails). `fast` drops every sleep (for draining after a crash)."""

    async def noop(ctx: Any, payload: Any) -> None:
        emit(f"RUNNING {ctx.id} {ctx.attempt} 0")

    async def step(ctx: Any, payload: Any) -> dict[str, int]:
        steps = int(payload["steps"])
        delay = 0.0 if fast else float(payload.get("delay", 0.0))
        first_delay = payload.get("first_delay")
        side = payload.get("side")
        resume = ctx.resume_data
        start = int(resume["step"]) + 1 if resume else 0
        if side:  # before the marker: a killer that saw RUNNING finds START in the file
            append_line(side, f"START {ctx.id} {ctx.attempt} {start}")
        emit(f"RUNNING {ctx.id} {ctx.attempt} {start}")
        for i in range(start, steps):
            wait = float(first_delay) if i == 0 and first_delay is not None and not fast else delay
            if wait:
                await asyncio.sleep(wait)
            await ctx.yield_point()
            if side:
                append_line(side, f"STEP {ctx.id} {i}")
            await ctx.checkpoint({"step": i})
            emit(f"CHECKPOINT {ctx.id} {i}")
        return {"steps": steps, "first": start}

    async def flaky(ctx: Any, payload: Any) -> dict[str, int]:
        emit(f"RUNNING {ctx.id} {ctx.attempt} 0")
        if ctx.attempt == 1:
            raise RuntimeError("flaky: the first attempt always fails")
        return {"attempt": ctx.attempt}

    async def photo(ctx: Any, payload: Any) -> int:
        if payload.get("hang") and not fast:
            await asyncio.Event().wait()
        append_line(payload["side"], f"PHOTO {ctx.id}")
        return int(payload["n"])

    async def album(ctx: Any, payload: Any) -> str:
        await ctx.spawn_children(
            [Submission("photo", {"n": i, "side": payload["side"], "hang": payload.get("hang_children", False)})
             for i in range(payload["children"])]
        )  # fmt: skip
        return "spawned"

    async def summarize(ctx: Any, payload: Any, children: Any) -> int:
        append_line(payload["side"], f"FINALIZE {ctx.id}")
        emit(f"FINALIZING {ctx.id}")
        if payload.get("hang_finalize") and not fast:
            await asyncio.Event().wait()
        return sum(c.result for c in children)

    engine.register("noop", noop)
    engine.register("step", step)
    engine.register("flaky", flaky, retry=FLAKY_RETRY)
    engine.register("photo", photo)
    engine.register("album", album, finalize=summarize)


# -- scenarios ----------------------------------------------------------------------------


async def scenario_submits(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """Single submits, one after another, forever."""
    i = 0
    while True:
        res = await engine.submit("noop", {"n": i, "tag": args.tag})
        emit(f"ACK {res.id}")
        i += 1
        await asyncio.sleep(0)  # let the engine dispatch: a submit may not suspend at all


async def submit_batch(engine: Engine, subs: list[Submission], tag: str, emit: Emit) -> list[int]:
    emit(f"BATCH {tag} {len(subs)}")
    results = await engine.submit_many(subs)
    ids = [r.id for r in results]
    if ids == list(range(ids[0], ids[0] + len(ids))):
        emit(f"ACKMANY {ids[0]} {ids[-1]} {tag}")
    else:
        for task_id in ids:
            emit(f"ACK {task_id}")
        emit(f"ACKBATCH {tag}")
    return ids


async def scenario_burst(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """submit_many batches of --batch noop tasks, forever. Payloads name their batch."""
    b = 0
    while True:
        tag = f"{args.tag}-{b}"
        subs = [Submission("noop", {"batch": tag, "i": i}) for i in range(args.batch)]
        await submit_batch(engine, subs, tag, emit)
        b += 1
        await asyncio.sleep(0)


def step_payload(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"steps": args.steps, "delay": args.delay}
    if args.side:
        payload["side"] = args.side
    payload.update(extra)
    return payload


async def scenario_running(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """Submit --count step tasks, --hang tasks whose first step never ends, --noops noop
    tasks (in that order), then let them run."""
    for _ in range(args.count):
        res = await engine.submit("step", step_payload(args))
        emit(f"ACK {res.id}")
    for _ in range(args.hang):
        res = await engine.submit("step", step_payload(args, first_delay=HANG_SECONDS))
        emit(f"ACK {res.id}")
    for i in range(args.noops):
        res = await engine.submit("noop", {"n": i})
        emit(f"ACK {res.id}")
    await asyncio.Event().wait()


async def scenario_checkpoint(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """One step task with no delay: it checkpoints in a tight loop."""
    res = await engine.submit("step", {"steps": 10**9, "delay": 0})
    emit(f"ACK {res.id}")
    await asyncio.Event().wait()


def _mixed_submission(rng: random.Random, tag: str) -> Submission:
    r = rng.random()
    if r < 0.6:
        return Submission("noop", {"w": tag})
    if r < 0.8:
        return Submission("flaky", {"w": tag})
    return Submission("step", {"w": tag, "steps": rng.randint(2, 15), "delay": rng.uniform(0.002, 0.02)})


async def scenario_mixed(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """The soak's load: single submits, submit_many batches (small ones and 500 noops),
    pauses and resumes of random tasks, on top of running step/flaky tasks."""
    rng = random.Random(args.seed)
    mine: list[int] = []
    paused: list[int] = [r.id for r in engine.tasks(states=["paused"], limit=200)]
    b = 0
    while True:
        r = rng.random()
        if r < 0.45:
            sub = _mixed_submission(rng, args.tag)
            res = await engine.submit(sub.kind, sub.payload)
            emit(f"ACK {res.id}")
            mine.append(res.id)
        elif r < 0.62:
            tag = f"{args.tag}-{b}"
            b += 1
            n = 500 if rng.random() < 0.05 else rng.randint(2, 40)
            subs = [_mixed_submission(rng, args.tag) for _ in range(n)]
            subs = [Submission(s.kind, {**s.payload, "batch": tag}) for s in subs]
            mine.extend(await submit_batch(engine, subs, tag, emit))
        elif r < 0.74 and mine:
            task_id = rng.choice(mine[-200:])
            try:
                await engine.pause(task_id)
            except TaskdeckError:
                continue
            emit(f"PAUSE {task_id}")
            paused.append(task_id)
        elif r < 0.86 and paused:
            task_id = paused.pop(rng.randrange(len(paused)))
            try:
                await engine.resume(task_id)
            except TaskdeckError:
                continue
            emit(f"RESUME {task_id}")
        await asyncio.sleep(rng.uniform(0, 0.004))


async def scenario_pause(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """A task hangs in its handler and is paused (PAUSE <id>), then nothing happens. With
    --then-resume the pause is committed first (a submit shares its commit), then the
    task is resumed (RESUME <id>) while its handler still runs. With --all, pause_all()
    instead (PAUSEALL)."""
    task_id = (await engine.submit("step", step_payload(args, first_delay=HANG_SECONDS))).id
    emit(f"ACK {task_id}")
    assert isinstance(emit, Stdout)
    await emit.wait_started(task_id)
    if args.all:
        await engine.pause_all()
        emit("PAUSEALL")
        await asyncio.Event().wait()
    await engine.pause(task_id)
    emit(f"PAUSE {task_id}")
    if args.then_resume:
        res = await engine.submit("noop", {"after": "pause"})
        emit(f"ACK {res.id}")
        await engine.resume(task_id)
        emit(f"RESUME {task_id}")
    await asyncio.Event().wait()


async def scenario_tree(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """An album (a parent) with --count photo children. With --hang children hang, and
    WAITING <id> is printed once the parent waits for them; with --hang-finalize the
    children finish and finalize hangs after printing FINALIZING <id>."""
    payload = {"children": args.count, "side": args.side, "hang_children": bool(args.hang),
               "hang_finalize": args.hang_finalize}  # fmt: skip
    task_id = (await engine.submit("album", payload)).id
    emit(f"ACK {task_id}")
    if args.hang:
        while (rec := engine.get(task_id)) is None or rec.state != "waiting":
            await asyncio.sleep(0.01)
        emit(f"WAITING {task_id}")
    await asyncio.Event().wait()


async def scenario_schedule(engine: Engine, args: argparse.Namespace, emit: Emit) -> None:
    """A schedule firing a step task every --every seconds (overlap skip, misfire run_once
    with --grace). Prints SCHEDULED <sid>, then FIRED <task id> <nominal instant> per fire."""
    payload = step_payload(args, first_delay=HANG_SECONDS if args.hang else None)
    sid = await engine.schedules.add("step", payload, every=args.every, overlap="skip", misfire="run_once",
                                     misfire_grace=args.grace)  # fmt: skip
    emit(f"SCHEDULED {sid}")
    async for ev in engine.events():
        if ev.kind == EventKind.SCHEDULE_FIRED:
            emit(f"FIRED {ev.task_id} {ev.data['at']!r}")


SCENARIOS = {
    "submits": scenario_submits,
    "burst": scenario_burst,
    "running": scenario_running,
    "serve": scenario_running,  # the same, with nothing to submit by default
    "checkpoint": scenario_checkpoint,
    "mixed": scenario_mixed,
    "pause": scenario_pause,
    "tree": scenario_tree,
    "schedule": scenario_schedule,
}


# -- main ---------------------------------------------------------------------------------


async def _watchdog(max_seconds: float) -> None:
    """Exit when the parent is gone (we were orphaned) or after `max_seconds`."""
    parent = os.getppid()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    while True:
        await asyncio.sleep(0.25)
        if os.getppid() != parent or loop.time() > deadline:
            os._exit(4)


async def _follow(engine: Engine, emit: Emit) -> None:
    async for ev in engine.events():
        if ev.kind in TERMINAL_EVENTS and ev.task_id is not None:
            emit(f"DONE {ev.task_id} {ev.kind.value}")


async def run(args: argparse.Namespace) -> None:
    emit = Stdout()
    watchdog = asyncio.create_task(_watchdog(args.max_seconds))
    engine = await Engine.open(args.db, engine_config(args.concurrency))
    rec = engine.last_recovery
    emit(f"OPENED {rec.resumed} {rec.restarted} {rec.failed} {rec.finalized}")
    register_kinds(engine, emit)
    await engine.start()
    follower = asyncio.create_task(_follow(engine, emit)) if args.events else None
    emit("READY")
    try:
        await SCENARIOS[args.scenario](engine, args, emit)
    finally:
        if follower is not None:
            follower.cancel()
        watchdog.cancel()
        await engine.stop(grace=0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.crash.worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("db")
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="w", help="marks payloads and batch tags of this run")
    p.add_argument("--side", default=None, help="file where step tasks record each finished step")
    p.add_argument("--count", type=int, default=0, help="running: step tasks to submit")
    p.add_argument("--steps", type=int, default=20, help="running: steps per step task")
    p.add_argument("--delay", type=float, default=0.02, help="running: seconds per step")
    p.add_argument("--hang", type=int, default=0, help="running: tasks whose first step never ends")
    p.add_argument("--noops", type=int, default=0, help="running: noop tasks to submit")
    p.add_argument("--batch", type=int, default=500, help="burst: tasks per submit_many")
    p.add_argument("--events", action="store_true", help="print DONE lines for terminal events")
    p.add_argument("--then-resume", action="store_true", help="pause: resume the task after pausing it")
    p.add_argument("--all", action="store_true", help="pause: pause_all() instead of pause(id)")
    p.add_argument("--every", type=float, default=0.5, help="schedule: seconds between fires")
    p.add_argument("--grace", type=float, default=60.0, help="schedule: misfire grace in seconds")
    p.add_argument("--hang-finalize", action="store_true", help="tree: finalize never ends")
    p.add_argument("--max-seconds", type=float, default=300.0, help="exit on our own after this")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
