"""`taskdeck`, the command line: submit, list, control and follow tasks, or run the worker.

Exit codes: 0 success, 1 the operation failed, 2 usage error. An error is one line on
stderr; core's TaskdeckError messages are written for users and are shown as they are."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import traceback
from collections.abc import Sequence

from core import TaskdeckError
from core.cli import parser as p
from core.cli.commands import COMMANDS, Context
from core.cli.database import resolve
from core.cli.errors import CommandError, UsageError
from core.cli.output import err, out
from core.cli.schedules import schedule

__all__ = ["main"]

COMMANDS["schedule"] = schedule

NO_WINDOW = (
    "taskdeck: no command, so running the headless worker (the `taskdeck` script alone "
    "opens the window; 'taskdeck --help' lists the commands)"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `taskdeck` command; returns the exit code."""
    parser = p.build()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already reported
        return e.code if isinstance(e.code, int) else 2
    command = args.command or "worker"
    if args.command is None:
        out(NO_WINDOW)
    try:
        return _run(command, args)
    except UsageError as e:
        sys.stderr.write(f"taskdeck {command}: {e} (see 'taskdeck {command} --help')\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`taskdeck history | head`)
        return 1


def _run(command: str, args: argparse.Namespace) -> int:
    try:
        path = resolve(getattr(args, "db", None))
        ctx = Context(path, bool(getattr(args, "json", False)), args)
        return asyncio.run(COMMANDS[command](ctx))
    except (TaskdeckError, CommandError) as e:
        err(str(e))
    except (UsageError, BrokenPipeError):
        raise
    except OSError as e:
        err(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except sqlite3.Error as e:
        err(f"database error: {e}")
    except Exception as e:  # a bug: say so in one line; TASKDECK_DEBUG=1 shows where
        err(f"internal error: {type(e).__name__}: {e}")
        if os.environ.get("TASKDECK_DEBUG"):
            traceback.print_exc()
    return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
