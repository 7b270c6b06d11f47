"""Built-in job kinds. They use only core's public API."""

from __future__ import annotations

from core import Engine
from core.jobs import demo
from core.jobs.net import register_network


def register_builtin(engine: Engine) -> None:
    """Register every built-in kind on `engine`."""
    demo.register(engine)
    register_network(engine)
