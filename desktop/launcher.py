"""`taskdeck`: with no command (or only window options and files) it opens the window;
with a command it is the CLI. The dispatch lives here, not in core, because core never
imports the window (SPEC §1). Wire it as the `taskdeck` console script."""

from __future__ import annotations

import sys
from collections.abc import Sequence

WINDOW_OPTIONS = ("--profile", "--minimized", "-v", "--verbose")


def wants_window(argv: Sequence[str]) -> bool:
    """No subcommand: only window options (--db, --profile, --minimized) and file paths."""
    import argparse

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
        if arg in ("-h", "--help", "--json") or arg in commands:
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_window(args):
        from desktop.app import main as window

        return window(args)
    from core.cli import main as cli

    return cli(args)
