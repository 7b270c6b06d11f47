"""Fixtures of the crash tests: worker processes that are always reaped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.crash.harness import Worker

Spawn = Callable[..., Worker]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start workers; every one still alive at the end is killed and reaped."""
    made: list[Worker] = []

    def start(db: Path, scenario: str, *args: Any) -> Worker:
        w = Worker(db, scenario, *args, stderr_path=tmp_path / f"worker{len(made)}.err")
        made.append(w)
        return w

    yield start
    for w in made:
        w.close()
