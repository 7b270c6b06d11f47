"""`taskdeck schedule ...` from the command line."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import ok, run


def test_given_preview_then_it_describes_the_expression_and_lists_fires(db: Path) -> None:
    res = ok(db, "schedule", "preview", "0 9 * * MON-FRI", "--tz", "Europe/Paris", "--count", "2")
    lines = res.out.splitlines()
    assert lines[0] == "At 09:00, Monday through Friday" and len(lines) == 3
    data = ok(db, "schedule", "preview", "*/5 * * * *", "--json").json
    assert data["description"] == "Every 5 minutes" and len(data["next"]) == 5


def test_given_a_bad_expression_then_exit_1_names_the_field(db: Path) -> None:
    res = run(db, "schedule", "add", "demo.sleep", "--cron", "0 25 * * *")
    assert res.code == 1 and res.err.strip() == "taskdeck: cron: hour must be 0–23, got 25"
    assert run(db, "schedule", "add", "demo.sleep").code == 2  # a trigger is required


def test_given_schedules_then_ls_show_pause_run_now_and_rm_work_without_a_worker(db: Path) -> None:
    added = ok(db, "schedule", "add", "demo.sleep", "--every", "15m", "--name", "sync", "--payload",
               '{"seconds": 0}', "--json").json  # fmt: skip
    sid = added["id"]
    assert added["trigger_text"] == "every 15 min" and added["next_fire"]
    assert "sync" in ok(db, "schedule", "ls").out
    assert ok(db, "schedule", "pause", str(sid)).out.strip() == f"schedule {sid} paused"
    assert ok(db, "schedule", "ls", "--json").json[0]["paused"] is True
    manual = ok(db, "schedule", "run-now", str(sid), "--json").json
    task = ok(db, "show", str(manual["task_id"]), "--json").json
    assert task["schedule_id"] == sid and task["tags"]["trigger"] == "manual"
    shown = ok(db, "schedule", "show", str(sid)).out
    assert "status     paused" in shown and "active runs (1)" in shown
    ok(db, "schedule", "resume", str(sid))
    ok(db, "schedule", "rm", str(sid))
    assert ok(db, "schedule", "ls").out.startswith("no schedules")
    res = run(db, "schedule", "show", str(sid))
    assert res.code == 1 and f"schedule {sid} does not exist" in res.err
