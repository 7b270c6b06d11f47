"""`python -m core.cli` runs the `taskdeck` command line."""

from core.cli import main

raise SystemExit(main())
