"""`command.run`: run a program, its output into the task log, progress from a regex.

- `argv` is run directly (no shell) unless `shell` is true, then `argv` is one command
  line for /bin/sh.
- `env` adds variables to the worker's environment; `$NAME` / `${NAME}` in a value is
  replaced by that variable of the worker's environment (`$$` is a literal `$`), so a
  secret never has to be in the payload. Names that look like secrets (TOKEN, PASSWORD,
  API_KEY ...) may only hold such references: the schema refuses literals at submit.
- stdout and stderr go to the task log, bounded: the first half of `log_lines` lines as
  they come, then only the last lines are kept and written when the program ends; each
  line is cut at `max_line` characters. The latest line is also the progress message.
- `progress_regex` is searched in every line (and every carriage-return update of one):
  a group named `percent` (or the first group) is a percentage; groups named `done` and
  `total` are counts.
- Exit code 0 completes; anything else fails with the code and the last lines of stderr.
  126/127 (cannot execute / not found) are permanent; other codes fail the attempt.
- The program runs in its own session (process group). Cancel, pause, stop and `timeout`
  send SIGTERM to the whole group, then SIGKILL after `kill_grace` seconds; processes the
  program left behind when it exits are ended the same way.

A command cannot resume half-way: after a pause or a crash it runs again from the start
(the checkpoint counts the runs, and the log says so). Automatic retries are off by
default, since commands may have side effects; submit with a retry policy to have them.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import os
import re
import shlex
import signal
from collections.abc import Mapping
from typing import Any

from core import Engine, Interrupted, InvalidSubmission, IoBudget, Permanent, RetryPolicy, TaskContext
from core.jobs.common import Payload, Throttle, absolute_path, checked, titled

KIND = "command.run"
DEFAULT_KILL_GRACE = 5.0
DEFAULT_LOG_LINES = 1000
DEFAULT_MAX_LINE = 1000
TAIL_IN_ERROR = 5
POLL = 0.05  # seconds between checks for an interruption while the program runs
READ_CHUNK = 1 << 16
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_REFERENCE_ONLY = r"^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$"
_SECRET_NAME = r"(?i)(pass(word|wd)?|secret|token|api_?key|access_?key|private_?key|credential|auth)"
_REFERENCE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["argv"],
    "properties": {
        "argv": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10000,
            "items": {"type": "string"},
            "description": "the program and its arguments (with shell: one command line)",
            # an annotation for forms: typed as one line, split as a terminal splits it
            "format": "command-line",
        },
        "cwd": {"type": "string", "minLength": 1, "description": "working folder (absolute)"},
        "env": {
            "type": "object",
            "propertyNames": {"pattern": _ENV_NAME},
            "additionalProperties": {"type": "string"},
            "patternProperties": {_SECRET_NAME: {"type": "string", "pattern": _REFERENCE_ONLY}},
            "description": "extra variables; '$NAME' takes NAME from the worker's environment",
        },
        "shell": {"type": "boolean", "description": "run argv[0] with /bin/sh -c (false)"},
        "progress_regex": {
            "type": "string",
            "minLength": 1,
            "maxLength": 1000,
            "description": "a group named percent (or the first group) is a percentage",
        },
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 604800, "description": "seconds"},
        "kill_grace": {
            "type": "number",
            "minimum": 0,
            "maximum": 300,
            "description": "seconds between SIGTERM and SIGKILL (5)",
        },
        "log_lines": {"type": "integer", "minimum": 0, "maximum": 100000, "description": "lines kept (1000)"},
        "max_line": {"type": "integer", "minimum": 80, "maximum": 8000, "description": "characters per line"},
    },
    "if": {"properties": {"shell": {"const": True}}, "required": ["shell"]},
    "then": {"properties": {"argv": {"maxItems": 1}}},
    "additionalProperties": False,
}
titled(
    SCHEMA,
    {
        "argv": "Command",
        "cwd": "Working folder",
        "env": "Environment",
        "shell": "Run through the shell",
        "progress_regex": "Progress pattern",
        "timeout": "Time limit (s)",
        "kill_grace": "Stop grace (s)",
        "log_lines": "Log lines kept",
        "max_line": "Longest log line",
    },
)


class CommandFailed(Exception):
    """The program exited with a code other than 0 (or was killed by a signal)."""


def validate(payload: Mapping[str, Any]) -> Payload:
    """Checks the schema cannot express: cwd exists, the regex compiles and has a group,
    secret-looking variables hold references only. Raises InvalidSubmission."""
    out = dict(payload)
    argv = payload.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidSubmission("argv", "must be a non-empty list of strings")
    if not argv[0]:
        raise InvalidSubmission("argv[0]", "the program must not be empty")
    for i, arg in enumerate(argv):
        if "\0" in arg:
            raise InvalidSubmission(f"argv[{i}]", "must not contain a NUL character")
    if payload.get("shell") and len(argv) != 1:
        raise InvalidSubmission("argv", "with shell=true give the whole command line as one string")
    if "cwd" in payload:
        cwd = absolute_path("cwd", payload["cwd"])
        if not os.path.isdir(cwd):
            raise InvalidSubmission("cwd", f"no such folder: {cwd}")
        out["cwd"] = cwd
    env = payload.get("env") or {}
    if not isinstance(env, Mapping):
        raise InvalidSubmission("env", "must be an object of NAME: value")
    for name, value in env.items():
        if not re.match(_ENV_NAME, str(name)):
            raise InvalidSubmission(f"env.{name}", "is not a valid variable name")
        if not isinstance(value, str) or "\0" in value:
            raise InvalidSubmission(f"env.{name}", "must be a string without NUL characters")
        if re.search(_SECRET_NAME, name) and not re.match(_REFERENCE_ONLY, value):
            raise InvalidSubmission(
                f"env.{name}", 'looks like a secret: give a reference such as "$' + name + '", not the value'
            )
    regex = payload.get("progress_regex")
    if regex is not None:
        try:
            compiled = re.compile(regex)
        except re.error as e:
            raise InvalidSubmission("progress_regex", f"is not a valid regular expression: {e}") from None
        names = compiled.groupindex
        if not compiled.groups or (("done" in names) != ("total" in names)):
            raise InvalidSubmission(
                "progress_regex", "needs a group with the percentage, or groups named done and total"
            )
    return out


def resolve_env(env: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """`env` with its $NAME references replaced from `environ`; Permanent if one is unset."""
    out = {}
    for name, value in env.items():

        def sub(m: re.Match[str], name: str = name) -> str:
            if m.group(1) == "$":
                return "$"
            ref = m.group(2) or m.group(3)
            if ref not in environ:
                raise Permanent(f"env.{name}: ${ref} is not set in the worker's environment")
            return environ[ref]

        out[name] = _REFERENCE.sub(sub, value)
    return out


class _Output:
    """Lines of both streams: bounded into the log, parsed for progress."""

    def __init__(self, ctx: TaskContext, opts: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.max_line = int(opts.get("max_line", DEFAULT_MAX_LINE))
        keep = int(opts.get("log_lines", DEFAULT_LOG_LINES))
        self.head = (keep + 1) // 2
        self.tail: collections.deque[tuple[str, str]] = collections.deque(maxlen=keep - self.head)
        self.logged = 0
        self.dropped = 0
        self.counts = {"stdout": 0, "stderr": 0}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=TAIL_IN_ERROR)
        self.stdout_tail: collections.deque[str] = collections.deque(maxlen=20)
        regex = opts.get("progress_regex")
        self.regex = re.compile(regex) if regex else None
        self.throttle = Throttle(0.2)
        self.message: str | None = None

    def line(self, stream: str, raw: str, extra: int = 0) -> None:
        """One complete line (`extra`: characters of it already dropped)."""
        segments = [s for s in raw.split("\r") if s.strip()]
        if self.regex is not None:
            for seg in segments:
                self.parse(seg)
        text = segments[-1] if segments else ""
        over = len(text) + extra - self.max_line
        if over > 0:
            text = text[: self.max_line] + f" …[{over} more characters]"
        self.counts[stream] += 1
        (self.stderr_tail if stream == "stderr" else self.stdout_tail).append(text)
        shown = text if stream == "stdout" else f"[stderr] {text}"
        if self.logged < self.head:
            self.logged += 1
            self.ctx.log(shown)
        else:
            if len(self.tail) == self.tail.maxlen:
                self.dropped += 1
            if self.tail.maxlen:
                self.tail.append((shown, "info"))
            else:
                self.dropped += 1
        if text.strip():
            self.message = text[:200]
            if self.regex is None and self.throttle():
                self.ctx.progress(message=self.message)

    def parse(self, seg: str) -> None:
        """Report progress if `seg` matches the progress regex."""
        assert self.regex is not None
        m = self.regex.search(seg)
        if m is None:
            return
        names = m.re.groupindex
        try:
            if "done" in names and "total" in names:
                done = int(float(m.group("done").replace(",", "")))
                total = int(float(m.group("total").replace(",", "")))
                if self.throttle() or done >= total:
                    self.ctx.progress(done=max(0, done), total=max(0, total), message=self.message)
                return
            pct = float((m.group("percent") if "percent" in names else m.group(1)).replace(",", "."))
        except (TypeError, ValueError, IndexError):
            return
        if self.throttle() or pct >= 100:
            self.ctx.progress(fraction=min(1.0, max(0.0, pct / 100.0)), message=self.message)

    def flush(self) -> None:
        if self.dropped:
            self.ctx.log(f"… {self.dropped} lines not kept (log_lines keeps the first and the last) …")
        for text, level in self.tail:
            self.ctx.log(text, level)
        self.tail.clear()


async def _pump(stream: asyncio.StreamReader | None, name: str, out: _Output) -> None:
    """Read a stream to its end, handing complete lines to `out`. A line longer than the
    log keeps is not held in memory whole: its end is only counted."""
    if stream is None:
        return
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    cap = 2 * out.max_line
    pending = ""
    extra = 0  # characters of the current line dropped beyond `cap`
    while True:
        chunk = await stream.read(READ_CHUNK)
        pending += decoder.decode(chunk, final=not chunk)
        if "\n" in pending:
            *lines, pending = pending.split("\n")
            for line in lines:
                out.line(name, line, extra)
                extra = 0
        if "\r" in pending:  # carriage-return progress updates: parse them as they come
            head, _, pending = pending.rpartition("\r")
            if out.regex is not None:
                for seg in head.split("\r"):
                    if seg.strip():
                        out.parse(seg)
            extra = 0
        if len(pending) > cap:
            extra += len(pending) - cap
            pending = pending[:cap]
        if not chunk:
            if pending or extra:
                out.line(name, pending, extra)
            return


def _exited(proc: asyncio.subprocess.Process) -> bool:
    return proc.returncode is not None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed its user: it is there
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def terminate_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the process group, SIGKILL to what is left after `grace` seconds; returns
    once the program was reaped and its group is empty (or after a last short wait)."""
    pgid = proc.pid
    _signal_group(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while loop.time() < deadline:
        if _exited(proc) and not _group_alive(pgid):
            return
        await asyncio.sleep(POLL)
    _signal_group(pgid, signal.SIGKILL)
    for _ in range(100):  # SIGKILLed members vanish once their parent (or init) reaps them
        if _exited(proc) and not _group_alive(pgid):
            return
        await asyncio.sleep(POLL)


async def run_command(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Run a program; its output goes to the task log."""
    opts = checked(validate, payload)
    env = {**os.environ, **resolve_env(opts.get("env") or {}, os.environ)}
    argv: list[str] = opts["argv"]
    grace = float(opts.get("kill_grace", DEFAULT_KILL_GRACE))
    timeout: float | None = opts.get("timeout")
    runs = int((ctx.resume_data or {}).get("runs", 0)) if isinstance(ctx.resume_data, dict) else 0
    if runs:
        ctx.log(f"the command was interrupted {runs} time(s); it starts again from the beginning")
    await ctx.checkpoint({"runs": runs + 1})
    out = _Output(ctx, opts)
    shown = argv[0] if opts.get("shell") else shlex.join(argv)
    try:
        if opts.get("shell"):
            proc = await asyncio.create_subprocess_shell(
                argv[0], cwd=opts.get("cwd"), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        else:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=opts.get("cwd"), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
    except FileNotFoundError:
        if opts.get("cwd") and not await asyncio.to_thread(os.path.isdir, opts["cwd"]):
            raise Permanent(f"cwd: no such folder: {opts['cwd']}") from None
        raise Permanent(f"argv[0]: program not found: {argv[0]}") from None
    except PermissionError:
        raise Permanent(f"argv[0]: not executable (permission denied): {argv[0]}") from None
    except OSError as e:
        raise Permanent(f"argv[0]: cannot be started: {e}") from None
    ctx.log(f"started pid {proc.pid}: {shown}")
    pumps = [
        asyncio.ensure_future(_pump(proc.stdout, "stdout", out)),
        asyncio.ensure_future(_pump(proc.stderr, "stderr", out)),
    ]
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + float(timeout)
    stopped_by: str | None = None
    try:
        # Poll the exit status: Process.wait() (3.11) also waits for the pipes to close,
        # which a child the program left behind may keep open forever.
        while not _exited(proc):
            if all(p.done() for p in pumps):  # it closed its output but runs on
                await asyncio.sleep(POLL)
            else:
                await asyncio.wait(pumps, timeout=POLL)
            if _exited(proc):
                break
            if ctx.interrupted:
                stopped_by = "interrupted"
            elif deadline is not None and loop.time() >= deadline:
                stopped_by = "timeout"
            if stopped_by:
                ctx.log(f"stopping the command ({stopped_by}): SIGTERM to its process group")
                await terminate_group(proc, grace)
                break
        # Output still buffered in the pipes; children that kept them open are ended too.
        _, open_pumps = await asyncio.wait(pumps, timeout=2.0)
        if _group_alive(proc.pid):
            ctx.log("the program left processes behind; ending them", "warning")
            await terminate_group(proc, grace)
        if open_pumps:
            await asyncio.wait(open_pumps, timeout=2.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 2.0)  # let the transport finish
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)  # cancelled outright: no grace left
        for p in pumps:
            p.cancel()
        raise
    finally:
        for p in pumps:
            if not p.done():
                p.cancel()
        out.flush()
    code = proc.returncode
    assert code is not None
    if stopped_by == "interrupted":
        raise Interrupted("interrupted")
    if stopped_by == "timeout":
        raise TimeoutError(f"timed out after {timeout:g} s; the command was stopped")
    if code == 0:
        ctx.log("exited with code 0")
        return {"exit_code": 0, "lines": dict(out.counts), "stdout_tail": list(out.stdout_tail)}
    if code < 0:
        try:
            what = f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            what = f"killed by signal {-code}"
    else:
        what = f"exit code {code}"
    tail = " | ".join(line.strip() for line in out.stderr_tail if line.strip())
    message = what + (f": {tail[-1000:]}" if tail else "")
    ctx.log(message, "error")
    if code in (126, 127):
        raise Permanent(message)
    raise CommandFailed(message)


def register(engine: Engine) -> None:
    engine.register(
        KIND,
        run_command,
        schema=SCHEMA,
        retry=RetryPolicy.none(),
        io=IoBudget(),
        validate=validate,
        description="Run a program (no shell unless asked); output in the task log",
    )
