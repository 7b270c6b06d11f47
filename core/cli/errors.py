"""Errors the command line raises itself (core's own derive from TaskdeckError)."""

from __future__ import annotations


class UsageError(Exception):
    """The arguments do not make sense together: exit code 2."""


class CommandError(Exception):
    """The operation failed for a reason core does not name: exit code 1."""
