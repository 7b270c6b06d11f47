"""Fixtures of the built-in kinds' tests: a started engine with every built-in kind on a
real file (real clock: these tests run real files, processes and worker pools)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig
from core.jobs import register_builtin


@pytest.fixture(autouse=True)
def _presets_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """User presets go to a file under tmp_path, never into the real config folder."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
async def eng(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await Engine.open(
        tmp_path / "tasks.db", EngineConfig(max_concurrency=4, process_workers=2, preempt_grace=5.0)
    )
    register_builtin(engine)
    await engine.start()
    yield engine
    await engine.stop(grace=0)


async def run_unchecked(eng: Engine, kind: str, payload: dict[str, Any]) -> Any:
    """Submit through a Client, as another process would (a Client does not run a kind's
    submit-time checks), and wait: the handler's own checks must catch what it was sent."""
    from core import Client

    client = await Client.open(eng.path)
    try:
        res = await client.submit(kind, payload)
    finally:
        await client.close()
    return await eng.wait(res.id, timeout=60)
