"""Property tests: arbitrary submissions either go in whole or raise InvalidSubmission."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import Engine, InvalidSubmission, SubmitOutcome

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
anything = json_values | st.tuples(st.integers()) | st.sets(st.integers(), max_size=2) | st.binary(max_size=4)

options = st.fixed_dictionaries(
    {},
    optional={
        "priority": st.integers(-5, 300) | st.booleans() | st.floats() | st.text(max_size=3),
        "key": st.none() | st.text(max_size=300),
        "on_duplicate": st.sampled_from(["skip", "supersede", "reject", "requeue", "merge", ""]),
        "delay": st.none() | st.floats(allow_nan=True) | st.integers(-10, 10),
        "ttl": st.none() | st.floats(allow_nan=True) | st.integers(-10, 10**6),
        "timeout": st.none() | st.floats() | st.integers(-5, 5),
        "group": st.none() | st.text(max_size=300),
        "label": st.none() | st.text(max_size=30) | st.integers(),
        "tags": st.none()
        | st.dictionaries(st.text(max_size=70), st.text(max_size=30) | st.integers(), max_size=35),
    },
)


async def _noop(ctx: Any, payload: Any) -> None:
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(anything, options), min_size=1, max_size=6))
def test_given_arbitrary_submissions_then_each_inserts_or_raises_invalid_submission(batch: list) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tasks.db"
        asyncio.run(_check(path, batch))
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def _check(path: Path, batch: list) -> None:
    eng = await Engine.open(path)
    eng.register("noop", _noop)
    try:
        inserted = 0
        for payload, opts in batch:
            before = sum(eng.counts().values())
            error: InvalidSubmission | None = None
            try:
                res = await eng.submit("noop", payload, **opts)
            except InvalidSubmission as e:
                error = e
            if error is not None:
                assert error.field and str(error).startswith(error.field)
                assert sum(eng.counts().values()) == before  # nothing written
                continue
            assert res.outcome in set(SubmitOutcome)
            inserted += res.outcome is SubmitOutcome.INSERTED
        assert len(eng.tasks()) == inserted
    finally:
        await eng.stop()
