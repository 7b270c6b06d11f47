"""`taskdeck`: with no command (or only window options and files) it opens the window;
with a command it is the CLI. The dispatch lives here, not in core, because core never
imports the window (SPEC §1). Wire it as the `taskdeck` console script."""

from __future__ import annotations

import sys
from collections.abc import Sequence

WINDOW_OPTIONS = ("--profile", "--minimized", "-v", "--verbose")


def wants_window(argv: Sequence[str]) -> bool:
    """No subcommand: only window options (--db, --profile, --minimized, -v) and files.

    Anything else goes to the CLI, which runs the command or names the mistake: an
    unknown option, or a bare word that is no file here (`taskdeck list` is a typo of
    `ls`, not a photo to queue)."""
    import argparse
    import os

    from core.cli import parser

    subparsers = [a for a in parser.build()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = {str(c) for sp in subparsers for c in sp.choices}
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--db", "--profile"):
            skip = True
            continue
        if arg.startswith("--db=") or arg.startswith("--profile=") or arg in WINDOW_OPTIONS:
            continue
        if arg in commands or arg.startswith("-"):
            return False
        if not os.path.exists(arg) and os.sep not in arg and "." not in arg:
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_window(args):
        from desktop.app import main as window

        return window(args)
    from core.cli import main as cli

    return cli(args)
