"""The bundle's entry point: the same dispatch as the `taskdeck` console script (no
command: the window; a command: the CLI)."""

import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
