"""The argument parser of `taskdeck` and the converters of its option values.

A usage error is one line on stderr and exit code 2; converters raise
`argparse.ArgumentTypeError` with a message that names what was wrong."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from core import BandwidthWindow, InvalidArgument, Priority, TaskState

ACTIVE_STATES = [s.value for s in TaskState if s.is_active]
TERMINAL_STATES = [s.value for s in TaskState if s.is_terminal]
DUPLICATE_POLICIES = ["skip", "supersede", "reject", "requeue"]
MAX_RETRIES = 1000
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h|d|w)?\s*", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: None = None) -> argparse.Namespace:  # type: ignore[override]
        """As argparse does, except that arguments nobody takes are reported by the
        (sub)command they were given to, whose --help is the one to read."""
        ns, extras = self.parse_known_args(args)
        if extras:
            owner = _command_parser(self, ns)
            hint = ""
            if getattr(ns, "command", None) == "submit" and extras[0].startswith(("{", "[", '"')):
                hint = "; give the payload with --payload"
            owner.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return ns


def _command_parser(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest parser `ns` went through: `taskdeck schedule add`'s for its options."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(ns, subs[0].dest, None) if subs else None
        if not chosen or chosen not in subs[0].choices:
            return parser
        parser = subs[0].choices[chosen]


# -- converters ------------------------------------------------------------------------


def text(value: str) -> str:
    """Any text that is valid UTF-8 (undecodable bytes on a command line are not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{value!r} is not valid UTF-8 text") from None
    return value


def group_name(value: str) -> str:
    """Non-empty text (a group name)."""
    if not value:
        raise argparse.ArgumentTypeError("must not be empty")
    return text(value)


def _is_int(text: str) -> bool:
    """Plain ASCII digits, short enough for SQLite (and for int())."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def task_id(text: str) -> int:
    value = text.strip().lstrip("#")
    if not _is_int(value) or int(value) < 1:
        raise argparse.ArgumentTypeError(f"invalid task id {text!r}: expected a positive integer")
    return int(value)


def priority(text: str) -> int:
    """A priority name (critical, high, normal, low, idle) or an int in 0..255."""
    name = text.strip().upper()
    if name in Priority.__members__:
        return int(Priority[name])
    if _is_int(name) and int(name) <= 255:
        return int(name)
    names = ", ".join(p.name.lower() for p in Priority)
    raise argparse.ArgumentTypeError(
        f"invalid priority {text!r}: use {names} or 0..255 (lower is more urgent)"
    )


def duration(text: str, *, positive: bool = False) -> float:
    """Seconds, or a number with a unit: 90, 1.5, 10s, 5m, 2h, 1d, 1w."""
    m = _DURATION.fullmatch(text)
    if m is None or not m.group(1).isascii():
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with s, m, h, d or w"
        )
    seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    if not math.isfinite(seconds) or (positive and seconds <= 0):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: must be {'> 0' if positive else 'finite'}"
        )
    return seconds


def positive_duration(text: str) -> float:
    return duration(text, positive=True)


def moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is local time."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date-time {text!r}: use ISO 8601, e.g. 2025-06-01T09:30 or ...T09:30+02:00"
        ) from None
    return value.astimezone() if value.tzinfo is None else value


def since(text: str) -> datetime:
    """A date-time, or a duration meaning that long ago (`2h`, `3d`)."""
    try:
        ago = duration(text)
    except argparse.ArgumentTypeError:
        pass
    else:
        return datetime.now().astimezone() - timedelta(seconds=ago)
    try:
        return moment(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use a duration ago (30m, 2h, 3d) or an ISO 8601 date-time"
        ) from None


_BYTE_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?(?:/s)?\s*", re.IGNORECASE)
_BYTE_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def byte_rate(text: str) -> float:
    """Bytes per second: 1000, 500K, 2.5MB, 10MiB/s (K, M, G are powers of 1000; KiB...
    of 1024)."""
    m = _BYTE_RATE.fullmatch(text)
    if m is None or not m.group(1).isascii():
        raise argparse.ArgumentTypeError(
            f"invalid rate {text!r}: use bytes per second, e.g. 500K, 2.5MB or 10MiB/s"
        )
    base = 1024.0 if m.group(3) else 1000.0
    value = float(m.group(1)) * base ** _BYTE_UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}: must be > 0")
    return value


def byte_rate_or_none(text: str) -> float | None:
    return None if text.strip().lower() == "none" else byte_rate(text)


def _pair(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected NAME=VALUE")
    return name.strip(), value.strip()


def rate_limit(text: str) -> tuple[str, float | None, float | None]:
    """SCOPE=N[/BURST] or SCOPE=none, SCOPE being kind:<kind> or group:<group>."""
    scope, value = _pair(text, "rate limit")
    if not scope.startswith(("kind:", "group:")) or scope.endswith(":"):
        raise argparse.ArgumentTypeError(
            f"invalid rate limit {text!r}: the scope is kind:<kind> or group:<group>"
        )
    if value.lower() == "none":
        return scope, None, None
    rate, _, burst = value.partition("/")
    try:
        per_second, burst_n = float(rate), float(burst) if burst else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid rate limit {text!r}: expected SCOPE=N[/BURST] tasks a second"
        ) from None
    if not (math.isfinite(per_second) and per_second > 0) or (
        burst_n is not None and not (math.isfinite(burst_n) and burst_n > 0)
    ):
        raise argparse.ArgumentTypeError(f"invalid rate limit {text!r}: rate and burst must be > 0")
    return scope, per_second, burst_n


def io_capacity(text: str) -> tuple[str, float | None]:
    """RESOURCE=RATE or RESOURCE=auto (learn it)."""
    from core.resources import RESOURCES

    resource, value = _pair(text, "IO capacity")
    if resource not in RESOURCES:
        raise argparse.ArgumentTypeError(
            f"invalid IO capacity {text!r}: the resource is one of {', '.join(RESOURCES)}"
        )
    return resource, None if value.lower() == "auto" else byte_rate(value)


def group_weight(text: str) -> tuple[str, float | None]:
    group, value = _pair(text, "weight")
    if value.lower() == "none":
        return group, None
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
        raise argparse.ArgumentTypeError(
            f"invalid weight {text!r}: expected GROUP=W with W > 0, or GROUP=none"
        )
    return group, weight


def group_min_slots(text: str) -> tuple[str, int | None]:
    group, value = _pair(text, "minimum")
    if value.lower() == "none":
        return group, None
    if not _is_int(value) or int(value) > 1024:
        raise argparse.ArgumentTypeError(
            f"invalid minimum {text!r}: expected GROUP=N with N in 0..1024, or GROUP=none"
        )
    return group, int(value)


def bandwidth_window(text: str) -> tuple[str, str, str, float | None] | None:
    """ "DAYS HH:MM-HH:MM RATE|none" (e.g. "mon-fri 09:00-17:00 1MB"), or "none" (no schedule)."""
    if text.strip().lower() == "none":
        return None
    parts = text.split()
    if len(parts) != 3 or "-" not in parts[1]:
        raise argparse.ArgumentTypeError(
            f"invalid schedule window {text!r}: "
            "expected 'DAYS HH:MM-HH:MM RATE', e.g. 'mon-fri 09:00-17:00 1MB'"
        )
    start, _, end = parts[1].partition("-")
    window = (parts[0], start, end, byte_rate_or_none(parts[2]))
    try:
        BandwidthWindow.of(window)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(f"invalid schedule window {text!r}: {e}") from None
    return window


def clock_or_duration(text: str) -> datetime | float:
    """HH:MM (today, or tomorrow if that has passed), an ISO date-time, or a duration."""
    value = text.strip()
    if re.fullmatch(r"\d{1,2}:\d{2}", value):
        now = datetime.now().astimezone()
        hour, minute = (int(x) for x in value.split(":"))
        if hour > 23 or minute > 59:
            raise argparse.ArgumentTypeError(f"invalid time {text!r}: expected HH:MM")
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    try:
        return positive_duration(value)
    except argparse.ArgumentTypeError:
        pass
    try:
        return moment(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use HH:MM, a duration (30m, 2h) or an ISO 8601 date-time"
        ) from None


def count(text: str) -> int:
    value = text.strip()
    if not _is_int(value):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected an integer in 0..{10**18 - 1}")
    return int(value)


def max_retries(text: str) -> int:
    n = count(text)
    if n > MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"invalid retry count {text!r}: must be in 0..{MAX_RETRIES}")
    return n


def concurrency(text: str) -> int:
    n = count(text)
    if not 1 <= n <= 1024:
        raise argparse.ArgumentTypeError(f"invalid limit {text!r}: must be in 1..1024")
    return n


def group_limit(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    return concurrency(text)


def tag(value: str) -> tuple[str, str]:
    key, sep, rest = text(value).partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid tag {value!r}: expected KEY=VALUE")
    return key, rest


def payload(value: str) -> Any:
    """JSON text, or @FILE to read it from a file."""
    where = ""
    if value.startswith("@"):
        where = f" in {value[1:]}"
        try:
            value = Path(value[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise argparse.ArgumentTypeError(f"cannot read {value[1:]!r}: {e}") from None
    try:
        found = json.loads(value, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(
            f"not valid JSON{where}: {e.msg} at line {e.lineno} column {e.colno} (char {e.pos})"
        ) from None
    except (ValueError, RecursionError) as e:  # NaN, a 5000-digit number, deep nesting
        raise argparse.ArgumentTypeError(f"not valid JSON{where}: {e or 'nested too deeply'}") from None
    try:
        json.dumps(found, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"a string{where} is not valid UTF-8 (a lone surrogate)") from None
    return found


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (JSON has no NaN or Infinity)")


def states(allowed: list[str]) -> Callable[[str], list[str]]:
    """A comma-separated list of states from `allowed`."""

    def convert(text: str) -> list[str]:
        found = [s.strip().lower() for s in text.split(",") if s.strip()]
        for s in found or [text]:
            if s not in allowed:
                raise argparse.ArgumentTypeError(f"unknown state {s!r} (choose from {', '.join(allowed)})")
        return found

    return convert


# -- the parser ------------------------------------------------------------------------


def _common() -> Parser:
    """--db and --json, accepted before or after the subcommand."""
    p = Parser(add_help=False)
    p.add_argument(
        "--db",
        type=text,
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the database (default: $TASKDECK_DB, else tasks.db in the user data directory)",
    )
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")
    return p


def build() -> Parser:
    common = _common()
    parser = Parser(
        prog="taskdeck",
        description=(
            "Taskdeck: a durable priority task queue. `taskdeck` alone opens the window; "
            "`taskdeck worker` runs the headless worker."
        ),
        parents=[common],
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common], allow_abbrev=False)

    _add_submit(add("submit", "queue a task"))
    p = add("ls", "list active tasks in dispatch order")
    p.add_argument(
        "--state",
        type=states(ACTIVE_STATES),
        action="extend",
        metavar="STATE[,STATE]",
        help=f"only these states: {', '.join(ACTIVE_STATES)}",
    )
    p.add_argument("--kind", type=text)
    p.add_argument("--group", type=text)
    p.add_argument("--limit", type=count, default=100, help="at most N rows (0: all; default 100)")
    p.add_argument("--tree", action="store_true", help="show children indented under their parents")

    p = add("history", "list finished tasks, newest first")
    p.add_argument(
        "--state",
        type=states(TERMINAL_STATES),
        action="extend",
        metavar="STATE[,STATE]",
        help=f"only these states: {', '.join(TERMINAL_STATES)}",
    )
    p.add_argument("--kind", type=text)
    p.add_argument(
        "--since",
        type=since,
        metavar="WHEN",
        help="finished since a date-time or a duration ago (2h, 3d)",
    )
    p.add_argument("--search", type=text, metavar="TEXT", help="text in the label, kind, error or payload")
    p.add_argument("--limit", type=count, default=50, help="at most N rows (0: all; default 50)")

    p = add("show", "show one task: its fields, events and last log lines")
    p.add_argument("id", type=task_id, metavar="ID")
    p.add_argument("--lines", type=count, default=10, metavar="N", help="log lines to show (default 10)")

    for name, about in (
        ("cancel", "cancel a task"),
        ("pause", "pause a task"),
        ("resume", "resume a paused task"),
        ("retry", "submit a failed, cancelled or expired task again"),
    ):
        add(name, about).add_argument("id", type=task_id, metavar="ID")

    p = add("wait", "wait until a task ends; exit 0 if it completed, 1 otherwise")
    p.add_argument("id", type=task_id, metavar="ID")
    p.add_argument("--timeout", type=positive_duration, metavar="S", help="give up after S seconds")

    p = add("logs", "print a task's log lines")
    p.add_argument("id", type=task_id, metavar="ID")
    p.add_argument("-f", "--follow", action="store_true", help="follow until the task ends")

    add("kinds", "list the kinds of task with their payload schemas")
    add("pause-all", "pause every task")
    add("resume-all", "undo pause-all")

    p = add("limits", "show or set concurrency, group, rate, IO and bandwidth limits")
    p.add_argument("--concurrency", type=concurrency, metavar="N", help="run up to N tasks at once")
    p.add_argument(
        "--rate",
        type=rate_limit,
        action="append",
        metavar="SCOPE=N[/BURST]",
        help="start at most N tasks a second of kind:<kind> or group:<group> ('=none' removes it)",
    )
    p.add_argument(
        "--bandwidth",
        type=byte_rate_or_none,
        default=argparse.SUPPRESS,
        metavar="RATE|none",
        help="limit what network jobs move together, e.g. 2MB (bytes/s; 'none': no limit)",
    )
    p.add_argument(
        "--until",
        type=clock_or_duration,
        metavar="WHEN",
        help="make --bandwidth temporary: until HH:MM, for a duration (2h), or an ISO date-time",
    )
    p.add_argument(
        "--bandwidth-schedule",
        type=bandwidth_window,
        action="append",
        metavar="'DAYS HH:MM-HH:MM RATE'",
        help="weekly bandwidth windows (repeat the option; 'none' removes the schedule)",
    )
    p.add_argument(
        "--io-capacity",
        type=io_capacity,
        action="append",
        metavar="RESOURCE=RATE|auto",
        help="fix a capacity (disk_read, disk_write, net_rx, net_tx) instead of learning it",
    )
    p.add_argument(
        "--weight", type=group_weight, action="append", metavar="GROUP=W", help="a group's share weight"
    )
    p.add_argument(
        "--min-slots",
        type=group_min_slots,
        action="append",
        metavar="GROUP=N",
        help="slots a group always gets",
    )
    p.add_argument("--group", type=group_name, metavar="G", help="the group whose limit --limit sets")
    p.add_argument(
        "--limit",
        type=group_limit,
        default=argparse.SUPPRESS,
        metavar="N|none",
        help="run up to N tasks of --group at once ('none': no limit of its own)",
    )

    p = add("watch", "follow events, one line each")
    p.add_argument(
        "--since",
        type=count,
        metavar="SEQ",
        help="replay persisted events after SEQ first (0: all)",
    )
    p.add_argument("--count", type=count, metavar="N", help="exit after N events")

    from core.cli.schedules import add_parser as add_schedule_parser

    add_schedule_parser(add)

    p = add("worker", "run the engine headless until SIGINT or SIGTERM")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    return parser


def _add_submit(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", type=text, metavar="KIND")
    p.add_argument(
        "--payload",
        type=payload,
        default=argparse.SUPPRESS,  # absent means {}, while --payload null means null
        metavar="JSON",
        help="the payload as JSON, or @FILE (default: {})",
    )
    p.add_argument(
        "--priority", type=priority, metavar="P", help="critical, high, normal, low, idle or 0..255"
    )
    p.add_argument("--key", type=text, help="deduplication key: at most one active task per key")
    p.add_argument(
        "--on-duplicate",
        choices=DUPLICATE_POLICIES,
        default="skip",
        help="what to do when a task with --key is active (default: skip)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", type=duration, metavar="S", help="start no sooner than S seconds from now")
    when.add_argument("--run-at", type=moment, metavar="ISO", help="start no sooner than this date-time")
    p.add_argument("--group", type=text, metavar="G")
    p.add_argument("--tag", type=tag, action="append", metavar="KEY=VALUE", help="a tag (repeatable)")
    p.add_argument("--label", type=text, metavar="L", help="a name to show instead of the kind")
    p.add_argument("--timeout", type=positive_duration, metavar="S", help="fail an attempt after S seconds")
    p.add_argument(
        "--ttl", type=positive_duration, metavar="S", help="expire if not started within S seconds"
    )
    p.add_argument("--max-retries", type=max_retries, metavar="N", help="retry a failure up to N times")
    p.add_argument(
        "--fail-fast",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether a part that fails for good cancels the rest (default: the kind's)",
    )
