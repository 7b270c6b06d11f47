"""With a real `taskdeck worker` process on the database: requests go through its inbox."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import (
    READY,
    Process,
    ok,
    one_line_error,
    poll,
    run,
    run_process,
    show,
    submit,
)

LONG = {"seconds": 60, "steps": 600}


def running(db: Path, task_id: int) -> None:
    poll(lambda: show(db, task_id)["state"] == "running", what=f"task {task_id} running")


def test_given_a_worker_when_demo_sleep_is_submitted_then_wait_exits_0_when_it_completes(
    db: Path, worker: Process
) -> None:
    task_id = submit(db, {"seconds": 0.2, "steps": 2})
    res = run(db, "wait", str(task_id), "--timeout", "30")
    assert (res.code, res.out) == (0, f"task {task_id} completed\n")
    rec = show(db, task_id)
    assert rec["result"] == {"slept": 0.2, "attempt": 1}
    assert [e["kind"] for e in rec["events"]] == ["submitted", "started", "completed"]


def test_given_a_worker_when_a_task_fails_for_good_then_wait_exits_1_and_show_has_the_error(
    db: Path, worker: Process
) -> None:
    task_id = submit(db, {"seconds": 0, "fail": "permanent"})
    res = run(db, "wait", str(task_id), "--timeout", "30", "--json")
    assert res.code == 1
    assert res.json["state"] == "failed"
    assert "asked to fail for good" in ok(db, "show", str(task_id)).out


def test_given_a_running_task_when_cancelled_through_the_worker_then_it_ends_cancelled(
    db: Path, worker: Process
) -> None:
    task_id = submit(db, LONG)
    running(db, task_id)
    res = ok(db, "cancel", str(task_id))
    assert res.out == f"cancel requested for task {task_id} (the running worker applies it)\n"
    waited = run(db, "wait", str(task_id), "--timeout", "30")
    assert (waited.code, waited.out) == (1, f"task {task_id} cancelled: cancelled while running\n")
    assert show(db, task_id)["state"] == "cancelled"


def test_given_a_running_task_when_paused_and_resumed_through_the_worker_then_it_runs_again(
    db: Path, worker: Process
) -> None:
    task_id = submit(db, LONG)
    running(db, task_id)
    assert ok(db, "pause", str(task_id), "--json").json == {
        "id": task_id,
        "action": "pause",
        "applied": False,
    }
    poll(lambda: show(db, task_id)["state"] == "paused", what="paused")
    ok(db, "resume", str(task_id))
    running(db, task_id)
    kinds = [e["kind"] for e in show(db, task_id)["events"]]
    assert kinds == ["submitted", "started", "paused", "resumed", "started"]
    ok(db, "cancel", str(task_id))
    assert run(db, "wait", str(task_id), "--timeout", "30").code == 1


def test_given_a_worker_when_logs_follows_a_task_then_it_ends_when_the_task_ends(
    db: Path, worker: Process
) -> None:
    task_id = submit(db, {"seconds": 0.5, "steps": 5})
    res = ok(db, "logs", str(task_id), "-f")
    assert res.out.splitlines()[-1].endswith("slept 0.5 s")
    assert show(db, task_id)["state"] == "completed"
    lines = [json.loads(line) for line in ok(db, "logs", str(task_id), "--json").out.splitlines()]
    assert lines[-1]["message"] == "slept 0.5 s" and lines[-1]["task_id"] == task_id


def test_given_a_worker_when_limits_are_set_then_it_applies_them(db: Path, worker: Process) -> None:
    res = ok(db, "limits", "--concurrency", "2", "--group", "g", "--limit", "1")
    assert "requested" in res.out and "running worker" in res.out

    def applied() -> bool:
        shown = ok(db, "limits", "--json").json
        return shown["max_concurrency"] == 2 and [(g["name"], g["limit"]) for g in shown["groups"]] == [
            ("g", 1)
        ]

    poll(applied, what="limits applied")


def test_given_a_worker_when_pause_all_then_new_tasks_wait_until_resume_all(
    db: Path, worker: Process
) -> None:
    assert "requested" in ok(db, "pause-all").out
    poll(lambda: ok(db, "limits", "--json").json["paused_all"], what="paused_all")
    task_id = submit(db, {"seconds": 0})
    assert show(db, task_id)["state"] == "paused"
    ok(db, "resume-all")
    assert run(db, "wait", str(task_id), "--timeout", "30").code == 0


def test_given_a_worker_then_kinds_lists_what_it_published(db: Path, worker: Process) -> None:
    kinds = {k["kind"]: k for k in ok(db, "kinds", "--json").json}
    assert {"demo.sleep", "resize.images", "files.copy", "command.run"} <= set(kinds)
    assert kinds["resize.images"]["schema"]["type"] == "object"  # published with its payload schema
    assert sorted(kinds) == sorted(builtin_kinds())
    assert {"upload.s3", "upload.http", "download.http"} <= set(kinds)


def builtin_kinds() -> list[str]:
    """The kinds register_builtin registers (the list grows with each built-in kind)."""
    import asyncio

    from core import Engine
    from core.jobs import register_builtin

    async def names() -> list[str]:
        engine = await Engine.open(":memory:")
        try:
            register_builtin(engine)
            return [k.kind for k in engine.kinds()]
        finally:
            await engine.stop(grace=0)

    return asyncio.run(names())


def test_given_a_worker_when_watching_then_each_event_is_one_line(
    db: Path, worker: Process, spawn: Callable[..., Process]
) -> None:
    task_id = submit(db, {"seconds": 0})
    assert run(db, "wait", str(task_id), "--timeout", "30").code == 0
    watch = spawn("--db", str(db), "watch", "--since", "0", "--json")
    seen = [json.loads(watch.expect(lambda line: '"completed"' in line))["kind"]]
    task_events = [json.loads(line) for line in watch.lines if json.loads(line)["task_id"] is not None]
    assert [e["kind"] for e in task_events][:2] == ["submitted", "started"]
    second = submit(db, {"seconds": 0})
    line = watch.expect(lambda line: json.loads(line)["task_id"] == second)
    seen.append(json.loads(line)["kind"])
    assert seen == ["completed", "submitted"]
    watch.signal(signal.SIGINT)
    assert watch.wait() == 130
    assert watch.stderr() == ""


def test_given_a_worker_when_a_second_one_starts_then_it_exits_1_naming_the_holder(
    db: Path, worker: Process
) -> None:
    res = run_process("--db", str(db), "worker")
    one_line_error(res, 1, "already in use by process", str(worker.proc.pid))


def test_given_a_busy_worker_when_signalled_twice_then_it_stops_at_once_and_the_task_stays_resumable(
    db: Path, spawn: Callable[..., Process]
) -> None:
    w = spawn("--db", str(db), "worker")
    w.expect(lambda line: line.startswith(READY))
    task_id = submit(db, LONG)
    running(db, task_id)
    w.signal(signal.SIGINT)
    w.expect(lambda line: "stopping;" in line)
    w.signal(signal.SIGTERM)
    w.expect(lambda line: "stopping now" in line)
    w.expect(lambda line: line == "taskdeck worker: stopped")
    assert w.wait() == 0, w.stderr()
    rec = show(db, task_id)
    assert rec["state"] == "pending"
    assert [e["kind"] for e in rec["events"]][-1] == "interrupted"


def test_given_a_busy_worker_when_signalled_once_then_the_running_task_may_finish(
    db: Path, spawn: Callable[..., Process]
) -> None:
    w = spawn("--db", str(db), "worker")
    w.expect(lambda line: line.startswith(READY))
    task_id = submit(db, {"seconds": 1, "steps": 10})
    running(db, task_id)
    w.signal(signal.SIGINT)
    w.expect(lambda line: line == "taskdeck worker: stopped")
    assert w.wait() == 0, w.stderr()
    assert show(db, task_id)["state"] == "completed"


def test_given_no_command_the_core_cli_says_so_and_runs_the_worker(
    db: Path, spawn: Callable[..., Process]
) -> None:
    w = spawn("--db", str(db))
    assert "running the headless worker" in w.expect(lambda line: True)
    w.expect(lambda line: line.startswith(READY) and str(db) in line)
    w.signal(signal.SIGTERM)
    assert w.wait() == 0
    assert "Traceback" not in w.stderr()
