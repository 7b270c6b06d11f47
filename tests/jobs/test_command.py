"""command.run with real subprocesses: output into the log (bounded), progress from a
regex, exit codes, env references, timeouts, and cancel reaching the whole process group
(a program that ignores SIGTERM, a program that started a child)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from core import Engine, InvalidSubmission, TaskState
from core.jobs import command
from tests.conftest import until

PY = sys.executable


async def run(eng: Engine, payload: dict[str, Any], **options: Any) -> Any:
    res = await eng.submit("command.run", payload, **options)
    return await eng.wait(res.id, timeout=60)


def messages(eng: Engine, task_id: int) -> list[str]:
    return [line.message for line in eng.logs(task_id)]


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its parent (it runs no more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def logged(eng: Engine, task_id: int, predicate: Callable[[str], bool]) -> str:
    """The first log line matching `predicate`, once the engine has written it."""
    found: list[str] = []

    def check() -> bool:
        found[:] = [m for m in messages(eng, task_id) if predicate(m)]
        return bool(found)

    await until(check, timeout=20)
    return found[0]


async def test_given_a_program_when_it_succeeds_then_its_output_is_in_the_log_and_result(
    eng: Engine, tmp_path: Path
) -> None:
    rec = await run(eng, {"argv": [PY, "-c", "import os,sys; print('hello', os.getcwd()); print('oops', file=sys.stderr)"],
                          "cwd": str(tmp_path)})  # fmt: skip
    assert rec.state == TaskState.COMPLETED, rec.error
    assert rec.result["exit_code"] == 0 and rec.result["stdout_tail"] == [f"hello {tmp_path}"]
    lines = messages(eng, rec.id)
    assert f"hello {tmp_path}" in lines and "[stderr] oops" in lines


async def test_given_no_shell_then_metacharacters_are_plain_arguments(eng: Engine, tmp_path: Path) -> None:
    rec = await run(eng, {"argv": ["echo", "a; touch", str(tmp_path / "pwned"), "|", "$(id)"]})
    assert rec.result["stdout_tail"] == [f"a; touch {tmp_path / 'pwned'} | $(id)"]
    assert not (tmp_path / "pwned").exists()
    shell = await run(eng, {"argv": ["echo one && echo two | tr a-z A-Z"], "shell": True})
    assert shell.result["stdout_tail"] == ["one", "TWO"]


async def test_given_nonzero_exit_then_it_fails_with_the_code_and_the_last_stderr_lines(eng: Engine) -> None:
    script = "import sys\nfor i in range(10): print(f'problem {i}', file=sys.stderr)\nsys.exit(3)"
    rec = await run(eng, {"argv": [PY, "-c", script]})
    assert rec.state == TaskState.FAILED
    assert "exit code 3" in (rec.error or "") and "problem 9" in (rec.error or "")
    assert "problem 0" not in (rec.error or "")  # only the last lines


async def test_given_missing_program_or_folder_then_it_fails_for_good(eng: Engine, tmp_path: Path) -> None:
    rec = await run(eng, {"argv": ["/definitely/not/a/program"]}, retry=None)
    assert rec.state == TaskState.FAILED and (rec.error or "").startswith("argv[0]: program not found")
    assert rec.attempt == 1
    with pytest.raises(InvalidSubmission, match=r"^cwd: no such folder"):
        command.validate({"argv": ["true"], "cwd": str(tmp_path / "nope")})
    sh = await run(eng, {"argv": ["exec /definitely/not/there"], "shell": True})
    assert sh.state == TaskState.FAILED and "exit code 127" in (sh.error or "")


async def test_given_env_references_then_values_come_from_the_environment_and_secrets_stay_out(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TD_TEST_SECRET", "s3cr3t-value")
    monkeypatch.setenv("TD_TEST_NAME", "world")
    show = "import os; print(os.environ['GREETING'], len(os.environ['API_TOKEN']))"
    env = {"GREETING": "hi $$ ${TD_TEST_NAME}s", "API_TOKEN": "$TD_TEST_SECRET"}
    rec = await run(eng, {"argv": [PY, "-c", show], "env": env})
    assert rec.state == TaskState.COMPLETED, rec.error
    assert rec.result["stdout_tail"] == ["hi $ worlds 12"]
    assert "s3cr3t-value" not in str(eng.get(rec.id).payload)
    with pytest.raises(InvalidSubmission, match="env"):  # a literal secret is refused at submit
        await eng.submit("command.run", {"argv": ["true"], "env": {"API_TOKEN": "literal-secret"}})
    with pytest.raises(InvalidSubmission, match=r"^env\.DB_PASSWORD: looks like a secret"):
        command.validate({"argv": ["true"], "env": {"DB_PASSWORD": "hunter2"}})
    unset = await run(eng, {"argv": ["true"], "env": {"X": "$TD_TEST_UNSET_VARIABLE"}})
    assert unset.state == TaskState.FAILED and (unset.error or "").startswith(
        "env.X: $TD_TEST_UNSET_VARIABLE is not set"
    )


async def test_given_progress_regex_then_progress_follows_the_output(eng: Engine) -> None:
    script = (
        "import sys, time\n"
        "for p in (10, 35, 60, 85, 100):\n"
        "    sys.stdout.write(f'\\rcopying... {p}% done'); sys.stdout.flush(); time.sleep(0.25)\n"
        "print()\n"
    )
    events = eng.events()
    res = await eng.submit("command.run", {"argv": [PY, "-c", script], "progress_regex": r"(\d+)% done"})
    seen: list[float] = []
    async for ev in events:
        if ev.task_id == res.id and ev.kind == "progress" and ev.data.get("progress") is not None:
            seen.append(ev.data["progress"])
        if ev.task_id == res.id and ev.kind in ("completed", "failed"):
            break
    rec = await eng.wait(res.id, timeout=30)
    assert rec.state == TaskState.COMPLETED, rec.error
    assert seen[0] == pytest.approx(0.10) and seen[-1] == pytest.approx(1.0)
    assert any(0.1 < p < 1.0 for p in seen) and seen == sorted(seen)
    assert messages(eng, res.id).count("copying... 100% done") == 1  # one log line, not one per update
    counts = await run(eng, {"argv": [PY, "-c", "print('item 3 of 4')"],
                             "progress_regex": r"item (?P<done>\d+) of (?P<total>\d+)"})  # fmt: skip
    assert counts.state == TaskState.COMPLETED
    with pytest.raises(InvalidSubmission, match=r"^progress_regex"):
        command.validate({"argv": ["true"], "progress_regex": "no group here"})
    with pytest.raises(InvalidSubmission, match=r"^progress_regex"):
        command.validate({"argv": ["true"], "progress_regex": "(unclosed"})


async def test_given_a_flood_of_output_then_the_log_keeps_the_first_and_last_lines_cut_to_length(
    eng: Engine,
) -> None:
    script = "print('x' * 5000)\nfor i in range(20000): print(f'line {i}')"
    rec = await run(eng, {"argv": [PY, "-c", script], "log_lines": 100, "max_line": 200})
    assert rec.state == TaskState.COMPLETED, rec.error
    lines = messages(eng, rec.id)
    assert len(lines) <= 100 + 4
    assert lines[1].startswith("x" * 200 + " …[4800 more characters]")
    assert "line 0" in lines and "line 19999" in lines and "line 10000" not in lines
    assert any("lines not kept" in m for m in lines)
    assert rec.result["lines"]["stdout"] == 20001


async def test_given_program_ignoring_sigterm_when_cancelled_then_it_is_killed_after_the_grace(
    eng: Engine,
) -> None:
    script = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('READY', os.getpid(), flush=True)\n"
        "time.sleep(300)\n"
    )
    res = await eng.submit("command.run", {"argv": [PY, "-c", script], "kill_grace": 0.5})
    pid = int((await logged(eng, res.id, lambda m: m.startswith("READY"))).split()[1])
    assert not gone(pid)
    await eng.cancel(res.id)
    rec = await eng.wait(res.id, timeout=30)
    assert rec.state == TaskState.CANCELLED
    await until(lambda: gone(pid), timeout=10)
    assert any("SIGTERM" in m for m in messages(eng, res.id))


async def test_given_program_with_a_child_when_cancelled_then_the_whole_group_is_gone(eng: Engine) -> None:
    script = "sleep 300 & echo CHILD $! $$; wait"
    res = await eng.submit("command.run", {"argv": [script], "shell": True, "kill_grace": 2})
    _, child, shell = (await logged(eng, res.id, lambda m: m.startswith("CHILD"))).split()
    assert not gone(int(child)) and not gone(int(shell))
    await eng.cancel(res.id)
    rec = await eng.wait(res.id, timeout=30)
    assert rec.state == TaskState.CANCELLED
    await until(lambda: gone(int(child)) and gone(int(shell)), timeout=10)


async def test_given_program_leaving_a_child_behind_when_it_exits_then_the_child_is_ended(
    eng: Engine,
) -> None:
    script = "sleep 300 & echo LEFT $!"
    rec = await run(eng, {"argv": [script], "shell": True, "kill_grace": 0.5})
    assert rec.state == TaskState.COMPLETED, rec.error
    left = int(next(m for m in messages(eng, rec.id) if m.startswith("LEFT")).split()[1])
    await until(lambda: gone(left), timeout=10)
    assert any("left processes behind" in m for m in messages(eng, rec.id))


async def test_given_timeout_then_the_program_is_stopped_and_the_attempt_fails(eng: Engine) -> None:
    script = "import os, time; print('PID', os.getpid(), flush=True); time.sleep(300)"
    rec = await run(eng, {"argv": [PY, "-c", script], "timeout": 0.5, "kill_grace": 0.5})
    assert rec.state == TaskState.FAILED and "timed out after 0.5 s" in (rec.error or "")
    pid = int(next(m for m in messages(eng, rec.id) if m.startswith("PID")).split()[1])
    await until(lambda: gone(pid), timeout=10)


async def test_given_running_command_when_paused_and_resumed_then_it_stops_and_runs_again(
    eng: Engine,
) -> None:
    script = "import os, sys, time\nprint('RUN', os.getpid(), flush=True)\ntime.sleep(float(sys.argv[1]))\n"
    res = await eng.submit("command.run", {"argv": [PY, "-c", script, "300"], "kill_grace": 0.5})
    first = int((await logged(eng, res.id, lambda m: m.startswith("RUN"))).split()[1])
    await eng.pause(res.id)
    await until(lambda: (r := eng.get(res.id)) is not None and r.state == TaskState.PAUSED, timeout=20)
    await until(lambda: gone(first), timeout=10)
    await eng.resume(res.id)
    await logged(eng, res.id, lambda m: "starts again from the beginning" in m)

    def runs() -> list[int]:
        return [int(m.split()[1]) for m in messages(eng, res.id) if m.startswith("RUN")]

    await until(lambda: len(runs()) == 2, timeout=20)
    second = runs()[1]
    assert second != first
    await eng.cancel(res.id)
    assert (await eng.wait(res.id, timeout=30)).state == TaskState.CANCELLED
    await until(lambda: gone(second), timeout=10)


def test_given_env_text_then_references_resolve_and_dollar_dollar_is_literal() -> None:
    env = {"A": "$X-${Y}-$$Z", "B": "plain"}
    assert command.resolve_env(env, {"X": "1", "Y": "2"}) == {"A": "1-2-$Z", "B": "plain"}
    assert os.environ.get("TD_NEVER_SET") is None
