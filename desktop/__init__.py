"""Taskdeck's window: PySide6 views over `core`, which it reaches only through the
engine's public API. `taskdeck` with no arguments (or `python -m desktop`) opens it."""
