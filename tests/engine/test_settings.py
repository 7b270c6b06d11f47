"""App settings kept in the database (presets, saved targets): shared by every process."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import Client, Engine, EngineConfig, InvalidArgument
from core.testing import FakeClock
from tests.conftest import next_event


async def test_given_an_app_setting_then_the_engine_and_a_client_share_it(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    await eng.start()
    events = eng.events()
    await eng.set_setting("presets", {"Web": {"max_width": 1600}})
    assert eng.get_setting("presets") == {"Web": {"max_width": 1600}}
    assert (await next_event(events, "settings_changed")).data == {"setting": "presets"}
    client = await Client.open(db_path)
    assert client.get_setting("presets") == {"Web": {"max_width": 1600}}
    await client.set_setting("targets", ["s3://photos"])
    assert eng.get_setting("targets") == ["s3://photos"]
    assert (await next_event(events, "settings_changed")).data == {"setting": "targets"}
    await client.set_setting("targets", None)  # None deletes it
    assert eng.get_setting("targets", "gone") == "gone"
    await client.close()
    await eng.stop()


async def test_app_settings_cannot_reach_the_engines_own(db_path: Path, clock: FakeClock) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    await eng.set_setting("max_concurrency", 99)
    await eng.stop()
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    assert eng.max_concurrency == 4 and eng.get_setting("max_concurrency") == 99
    with pytest.raises(InvalidArgument, match="name"):
        await eng.set_setting("", 1)
    with pytest.raises(InvalidArgument, match="JSON"):
        await eng.set_setting("x", {1, 2})
    with pytest.raises(InvalidArgument, match="bytes"):
        await eng.set_setting("x", "a" * (1 << 20 + 1))
    await eng.stop()
