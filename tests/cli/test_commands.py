"""The commands against a database no engine holds: queries read it, control applies at once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import ok, one_line_error, run, run_argv, run_process, show, submit

# -- submit ----------------------------------------------------------------------------


def test_given_a_new_path_when_a_task_is_submitted_with_json_then_id_and_outcome_are_printed(
    db: Path,
) -> None:
    res = ok(db, "submit", "demo.sleep", "--payload", '{"seconds": 1}', "--json")
    assert res.json == {"id": 1, "outcome": "inserted"}
    rec = show(db, 1)
    assert rec["kind"] == "demo.sleep"
    assert rec["payload"] == {"seconds": 1}
    assert rec["state"] == "pending"


def test_given_every_submit_option_then_the_stored_task_has_them(db: Path) -> None:
    task_id = submit(
        db, {"seconds": 2}, "--priority", "high", "--key", "k1", "--group", "g", "--tag", "a=1",
        "--tag", "b=x=y", "--label", "my label", "--timeout", "30", "--ttl", "1h", "--delay", "5m",
        "--max-retries", "1",
    )  # fmt: skip
    rec = show(db, task_id)
    assert rec["priority"] == 64
    assert rec["key"] == "k1"
    assert rec["group"] == "g"
    assert rec["tags"] == {"a": "1", "b": "x=y"}
    assert rec["label"] == "my label"
    assert rec["timeout"] == 30
    assert rec["ttl"] == 3600
    assert rec["max_retries"] == 1
    assert rec["run_at"] is not None and rec["run_at"] > rec["created_at"]


@pytest.mark.parametrize(
    ("text", "value"), [("critical", 0), ("HIGH", 64), ("normal", 128), ("idle", 255), ("7", 7)]
)
def test_given_a_priority_name_or_number_then_it_is_stored_as_its_value(
    db: Path, text: str, value: int
) -> None:
    assert show(db, submit(db, {}, "--priority", text))["priority"] == value


def test_given_run_at_without_offset_then_it_is_local_time(db: Path) -> None:
    rec = show(db, submit(db, {}, "--run-at", "2999-01-02T03:04:05"))
    assert rec["run_at"].startswith("2999-01-0")


def test_given_no_payload_then_an_empty_object_is_submitted(db: Path) -> None:
    assert show(db, submit(db))["payload"] == {}


def test_given_a_key_when_submitted_twice_then_the_second_is_a_duplicate_or_rejected(db: Path) -> None:
    first = submit(db, {}, "--key", "same")
    again = ok(db, "submit", "demo.sleep", "--key", "same", "--json")
    assert again.json == {"id": first, "outcome": "duplicate"}
    rejected = run(db, "submit", "demo.sleep", "--key", "same", "--on-duplicate", "reject")
    assert rejected.code == 1
    assert len(rejected.err_lines) == 1 and "not submitted" in rejected.err


def test_given_a_payload_file_then_it_is_read(db: Path, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"seconds": 3}')
    assert show(db, submit(db, None, f"--payload=@{tmp_path / 'p.json'}"))["payload"] == {"seconds": 3}


# -- usage and operation errors --------------------------------------------------------


def test_given_bad_json_then_exit_2_names_payload_and_the_position(db: Path) -> None:
    res = run(db, "submit", "demo.sleep", "--payload", '{"seconds": 1')
    one_line_error(res, 2, "--payload", "line 1 column 14")


@pytest.mark.parametrize("payload", ["NaN", '{"x": Infinity}', "[" * 5000])
def test_given_json_the_engine_cannot_store_then_exit_2_on_one_line(db: Path, payload: str) -> None:
    one_line_error(run(db, "submit", "demo.sleep", f"--payload={payload}"), 2, "--payload")


def test_given_a_payload_against_the_schema_then_exit_1_names_the_field(db: Path) -> None:
    res = run(db, "submit", "demo.sleep", "--payload", '{"seconds": -1}')
    one_line_error(res, 1, "taskdeck: payload.seconds:")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["submit", "demo.sleep", "--priority", "urgent"], "--priority"),
        (["submit", "demo.sleep", "--priority", "256"], "--priority"),
        (["submit", "demo.sleep", "--delay", "-1"], "--delay"),
        (["submit", "demo.sleep", "--delay", "nan"], "--delay"),
        (["submit", "demo.sleep", "--delay", "1", "--run-at", "2030-01-01"], "--run-at"),
        (["submit", "demo.sleep", "--tag", "novalue"], "--tag"),
        (["submit", "demo.sleep", "--max-retries", "1001"], "--max-retries"),
        (["submit", "demo.sleep", "--on-duplicate", "merge"], "--on-duplicate"),
        (["ls", "--state", "bogus"], "unknown state 'bogus'"),
        (["ls", "--state", "completed"], "unknown state 'completed'"),
        (["history", "--state", "running"], "unknown state 'running'"),
        (["history", "--since", "yesterday"], "--since"),
        (["show", "abc"], "invalid task id"),
        (["show", "99999999999999999999999"], "invalid task id"),
        (["limits", "--limit", "3"], "--group"),
        (["limits", "--concurrency", "0"], "--concurrency"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_given_a_usage_error_then_exit_2_with_one_line(db: Path, argv: list[str], needle: str) -> None:
    one_line_error(run(db, *argv), 2, needle)


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["submit", "demo.sleep", '{"seconds": 1}'], "taskdeck submit: unrecognized arguments: {"),
        (["ls", "--bogus"], "taskdeck ls: unrecognized arguments: --bogus"),
        (["schedule", "ls", "extra"], "taskdeck schedule ls: unrecognized arguments: extra"),
    ],
)
def test_given_an_argument_no_option_takes_then_the_command_that_got_it_says_so(
    db: Path, argv: list[str], prefix: str
) -> None:
    res = run(db, *argv)
    one_line_error(res, 2, prefix, f"(see '{prefix.split(':')[0]} --help')")
    assert res.err.startswith(prefix)
    if argv[0] == "submit":
        assert "give the payload with --payload" in res.err


@pytest.mark.parametrize("command", ["show", "cancel", "pause", "resume", "retry", "wait", "logs"])
def test_given_an_unknown_task_id_then_exit_1_says_it_does_not_exist(db: Path, command: str) -> None:
    one_line_error(run(db, command, "42"), 1, "taskdeck: task 42 does not exist")


def test_given_a_file_that_is_not_a_database_then_exit_1_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_text("not a database, just some text" * 100)
    one_line_error(run(bad, "ls"), 1, "taskdeck:", str(bad))


def test_given_a_missing_folder_then_exit_1_with_one_line(tmp_path: Path) -> None:
    one_line_error(run(tmp_path / "no" / "such" / "tasks.db", "ls"), 1, "taskdeck:")


def test_given_help_then_exit_0() -> None:
    assert run_argv(["--help"]).code == 0
    assert run_argv(["submit", "--help"]).code == 0


# -- queries ---------------------------------------------------------------------------


def test_given_tasks_when_listed_then_ls_is_in_dispatch_order_and_filters_by_state(db: Path) -> None:
    low = submit(db, {}, "--priority", "low")
    high = submit(db, {}, "--priority", "high", "--label", "urgent one")
    paused = submit(db, {})
    ok(db, "pause", str(paused))
    assert [r["id"] for r in ok(db, "ls", "--json").json] == [high, paused, low]
    assert [r["id"] for r in ok(db, "ls", "--state", "paused", "--json").json] == [paused]
    assert [r["id"] for r in ok(db, "ls", "--state", "pending,paused", "--limit", "1", "--json").json] == [
        high
    ]
    text = ok(db, "ls").out.splitlines()
    assert text[0].split() == ["ID", "STATE", "PRI", "NAME", "PROGRESS", "AGE"]
    assert "urgent one" in text[1] and "high" in text[1]
    assert "paused:user" in text[2]


def test_given_no_tasks_then_ls_and_history_say_so(db: Path) -> None:
    assert ok(db, "ls").out == "no active tasks\n"
    assert ok(db, "history").out == "no finished tasks\n"
    assert ok(db, "ls", "--json").json == []


def test_given_more_tasks_than_the_limit_then_ls_says_more_exist(db: Path) -> None:
    for _ in range(3):
        submit(db, {})
    lines = ok(db, "ls", "--limit", "2").out.splitlines()
    assert len(lines) == 4 and "--limit" in lines[-1]
    assert len(ok(db, "ls", "--limit", "0", "--json").json) == 3


def test_given_ended_tasks_then_history_is_newest_first_with_filters(db: Path) -> None:
    a = submit(db, {}, "--label", "alpha")
    b = submit(db, {}, "--label", "beta")
    ok(db, "cancel", str(a))
    ok(db, "cancel", str(b))
    assert [r["id"] for r in ok(db, "history", "--json").json] == [b, a]
    assert [r["id"] for r in ok(db, "history", "--search", "alp", "--json").json] == [a]
    assert ok(db, "history", "--state", "failed", "--json").json == []
    assert [r["id"] for r in ok(db, "history", "--since", "1h", "--json").json] == [b, a]
    assert ok(db, "history", "--since", "2999-01-01", "--json").json == []
    assert "cancelled" in ok(db, "history").out


def test_given_a_task_then_show_json_is_one_object_with_events_and_logs(db: Path) -> None:
    task_id = submit(db, {"seconds": 1}, "--tag", "k=v")
    rec = show(db, task_id)
    assert rec["id"] == task_id
    assert [e["kind"] for e in rec["events"]] == ["submitted"]
    assert rec["logs"] == []
    assert rec["created_at"].endswith("+00:00") or "T" in rec["created_at"]
    text = ok(db, "show", str(task_id)).out
    assert f"task {task_id}  demo.sleep" in text
    assert "attempt 1 of 4" in text
    assert "k=v" in text
    assert "submitted" in text


def test_given_no_engine_then_kinds_lists_demo_sleep_with_its_schema(db: Path) -> None:
    kinds = {k["kind"]: k for k in ok(db, "kinds", "--json").json}
    assert "seconds" in kinds["demo.sleep"]["schema"]["properties"]
    assert kinds["demo.sleep"]["retry"]["max_retries"] == 3
    text = ok(db, "kinds").out
    assert "demo.sleep" in text and "seconds" in text and "how long to sleep" in text
    # A payload that may also be null is shown as a table of fields, not as raw JSON.
    assert "payload (an object or null; * required; no other fields):" in text
    assert re.search(r"seconds +number 0\.\.86400 = 5 +how long to sleep", text), text
    assert "payload schema: {" not in text


def test_given_tasks_then_watch_since_0_replays_their_events(db: Path) -> None:
    task_id = submit(db, {})
    ok(db, "cancel", str(task_id))
    lines = ok(db, "watch", "--since", "0", "--count", "2", "--json").out.splitlines()
    events = [json.loads(line) for line in lines]
    assert [(e["kind"], e["task_id"]) for e in events] == [("submitted", task_id), ("cancelled", task_id)]
    text = ok(db, "watch", "--since", "0", "--count", "1").out
    assert "submitted" in text and f"task {task_id} (demo.sleep)" in text


def test_given_a_task_without_log_lines_then_logs_prints_nothing(db: Path) -> None:
    assert ok(db, "logs", str(submit(db, {}))).out == ""


def test_given_a_pending_task_and_no_worker_then_wait_times_out_with_exit_1(db: Path) -> None:
    one_line_error(run(db, "wait", str(submit(db, {})), "--timeout", "0.3"), 1, "did not finish within 0.3 s")


# -- control without a worker: applied at once ------------------------------------------


def test_given_no_worker_when_paused_resumed_and_cancelled_then_each_applies_at_once(db: Path) -> None:
    task_id = submit(db, {})
    assert ok(db, "pause", str(task_id)).out == f"task {task_id} paused\n"
    rec = show(db, task_id)
    assert (rec["state"], rec["pause_reasons"]) == ("paused", ["user"])
    assert ok(db, "resume", str(task_id)).out == f"task {task_id} resumed\n"
    assert show(db, task_id)["state"] == "pending"
    assert ok(db, "cancel", str(task_id), "--json").json == {
        "id": task_id,
        "action": "cancel",
        "applied": True,
    }
    assert show(db, task_id)["state"] == "cancelled"
    one_line_error(run(db, "cancel", str(task_id)), 1, f"task {task_id} already ended (cancelled)")
    one_line_error(run(db, "resume", str(task_id)), 1, "already ended")


def test_given_a_pending_task_when_resumed_then_it_says_it_is_not_paused(db: Path) -> None:
    one_line_error(run(db, "resume", str(submit(db, {}))), 1, "is not paused")


def test_given_a_cancelled_task_when_retried_then_a_new_linked_task_is_submitted(db: Path) -> None:
    old = submit(db, {"seconds": 1}, "--label", "again")
    ok(db, "cancel", str(old))
    res = ok(db, "retry", str(old), "--json").json
    assert res["outcome"] == "inserted" and res["retry_of"] == old
    new = show(db, res["id"])
    assert (new["retry_of"], new["payload"], new["label"], new["state"]) == (
        old,
        {"seconds": 1},
        "again",
        "pending",
    )
    one_line_error(run(db, "retry", str(res["id"])), 1, "only failed, cancelled or expired")


def test_given_pause_all_then_tasks_are_paused_until_resume_all(db: Path) -> None:
    task_id = submit(db, {})
    assert ok(db, "pause-all").out == "all tasks paused\n"
    assert show(db, task_id)["pause_reasons"] == ["global"]
    assert ok(db, "limits", "--json").json["paused_all"] is True
    assert ok(db, "resume-all").out == "all tasks resumed\n"
    assert show(db, task_id)["state"] == "pending"


def test_given_limits_when_set_then_show_returns_them(db: Path) -> None:
    shown = ok(db, "limits", "--json").json
    assert (shown["max_concurrency"], shown["paused_all"], shown["groups"]) == (4, False, [])
    assert shown["bandwidth"]["limit"] is None and shown["rate_limits"] == {} and shown["io_capacity"] == {}
    assert "set max concurrency 3" in ok(db, "limits", "--concurrency", "3").out
    ok(db, "limits", "--group", "s3://bucket", "--limit", "2")
    shown = ok(db, "limits", "--json").json
    assert shown["max_concurrency"] == 3
    assert [(g["name"], g["limit"]) for g in shown["groups"]] == [("s3://bucket", 2)]
    text = ok(db, "limits").out
    assert "max concurrency  3" in text and "s3://bucket" in text
    ok(db, "limits", "--group", "s3://bucket", "--limit", "none")
    assert ok(db, "limits", "--json").json["groups"] == []


def test_given_rate_bandwidth_io_and_share_options_then_limits_stores_and_shows_them(db: Path) -> None:
    out = ok(
        db,
        "limits",
        "--rate", "kind:demo.sleep=2/5",
        "--bandwidth", "2MB",
        "--bandwidth-schedule", "mon-fri 09:00-17:00 500K",
        "--bandwidth-schedule", "sat,sun 00:00-24:00 none",
        "--io-capacity", "disk_write=180MB",
        "--weight", "photos=3",
        "--min-slots", "ui=1",
    ).out  # fmt: skip
    assert "kind:demo.sleep rate 2/s burst 5" in out and "bandwidth 2 MB/s" in out
    shown = ok(db, "limits", "--json").json
    assert shown["rate_limits"] == {"kind:demo.sleep": {"per_second": 2.0, "burst": 5.0}}
    assert shown["bandwidth"]["base"] == 2_000_000
    assert [w["end"] for w in shown["bandwidth"]["schedule"]] == ["17:00", "24:00"]
    assert shown["io_capacity"] == {"disk_write": 180_000_000}
    assert shown["group_shares"] == {
        "photos": {"weight": 3.0, "min_slots": 0},
        "ui": {"weight": 1.0, "min_slots": 1},
    }
    text = ok(db, "limits").out
    assert "mon-fri 09:00-17:00  500 KB/s" in text and "disk_write 180 MB/s" in text
    assert "for 2 h" in ok(db, "limits", "--bandwidth", "10MiB/s", "--until", "2h").out
    assert ok(db, "limits", "--json").json["bandwidth"]["limit"] == 10 * 1024 * 1024
    ok(
        db,
        "limits",
        "--rate",
        "kind:demo.sleep=none",
        "--bandwidth-schedule",
        "none",
        "--io-capacity",
        "disk_write=auto",
    )
    shown = ok(db, "limits", "--json").json
    assert shown["rate_limits"] == {} and shown["bandwidth"]["schedule"] == [] and shown["io_capacity"] == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "kind:x=fast"], "invalid rate limit"),
        (["--rate", "x=1"], "kind:<kind> or group:<group>"),
        (["--bandwidth", "fast"], "invalid rate 'fast'"),
        (["--bandwidth", "0"], "must be > 0"),
        (["--until", "17:00"], "--until goes with --bandwidth"),
        (["--bandwidth", "1MB", "--until", "25:00"], "invalid time"),
        (["--bandwidth-schedule", "mon 9-5 1MB"], "invalid schedule window"),
        (["--bandwidth-schedule", "funday 09:00-10:00 1MB"], "unknown day"),
        (["--io-capacity", "disk=1MB"], "the resource is one of"),
        (["--weight", "photos=0"], "invalid weight"),
        (["--min-slots", "ui=-1"], "invalid minimum"),
    ],
)
def test_given_bad_limits_then_one_line_names_the_problem_and_nothing_changes(
    db: Path, args: list[str], message: str
) -> None:
    ok(db, "limits", "--bandwidth", "1MB")
    res = run_argv(["--db", str(db), "limits", *args])
    assert res.code == 2 and message in res.err and len(res.err.strip().splitlines()) == 1
    assert ok(db, "limits", "--json").json["bandwidth"]["base"] == 1_000_000


# -- where the database is -------------------------------------------------------------


def test_given_taskdeck_db_in_the_environment_then_it_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKDECK_DB", str(tmp_path / "env.db"))
    assert run_argv(["submit", "demo.sleep", "--json"]).code == 0
    assert (tmp_path / "env.db").exists()


def test_given_no_db_option_then_the_user_data_directory_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKDECK_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert run_argv(["ls"]).code == 0
    assert (tmp_path / "data" / "taskdeck" / "tasks.db").exists()


# -- as a real process ----------------------------------------------------------------


def test_given_a_real_process_then_errors_are_one_line_with_exit_codes_1_and_2(db: Path) -> None:
    one_line_error(run_process("--db", str(db), "submit", "demo.sleep", "--payload", "{oops"), 2, "--payload")
    one_line_error(run_process("--db", str(db), "show", "42"), 1, "taskdeck: task 42 does not exist")
    res = run_process("--db", str(db), "submit", "demo.sleep", "--payload", '{"seconds": 1}', "--json")
    assert (res.code, json.loads(res.out), res.err) == (0, {"id": 1, "outcome": "inserted"}, "")
