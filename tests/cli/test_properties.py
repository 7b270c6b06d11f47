"""Whatever is typed after `taskdeck submit`, the outcome is a stored task (exit 0) or one
line on stderr (exit 1 or 2), never a traceback, and the database stays intact."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.cli.conftest import run

# Undecodable bytes on a real command line arrive as lone surrogates (surrogateescape).
raw_text = (
    st.text(max_size=30) | st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape"))
).map(
    str  # one branch wherever it is used, not two
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
demo_payloads = st.fixed_dictionaries(
    {},
    optional={
        "seconds": st.integers(-2, 10) | st.floats(0, 5),
        "steps": st.integers(-1, 5),
        "fail": st.sampled_from([True, False, "once", "x"]),
        "message": st.text(max_size=10),
    },
)


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` three times in four: most examples store a task, some do not."""
    return st.integers(0, 3).flatmap(lambda i: invalid if i == 0 else valid)


payloads = mostly(st.none() | demo_payloads.map(json.dumps) | json_values.map(json.dumps), raw_text)
priorities = mostly(
    st.none() | st.sampled_from(["critical", "HIGH", "Normal", "low", "idle"]) | st.integers(0, 255).map(str),
    raw_text | st.integers(-5, 300).map(str),
)
tag_pairs = st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=10)).map("=".join)
tags = mostly(st.lists(tag_pairs, max_size=3), st.lists(raw_text, min_size=1, max_size=2))
delays = mostly(
    st.none() | st.integers(0, 10**6).map(str) | st.sampled_from(["5m", "1.5h", "2d"]),
    st.floats().map(str) | raw_text,
)
kinds = mostly(st.just("demo.sleep") | st.text(min_size=1, max_size=20), raw_text)


def test_given_arbitrary_submit_arguments_then_a_task_or_one_line_never_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    stored: list[int] = []

    @example(kind="demo.sleep", payload='{"seconds": 1}', priority="high", tag_list=["a=b"], delay="5m")
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(kind=kinds, payload=payloads, priority=priorities, tag_list=tags, delay=delays)
    def check(
        kind: str, payload: str | None, priority: str | None, tag_list: list[str], delay: str | None
    ) -> None:
        argv = ["submit", "--json"]
        for flag, value in (("--payload", payload), ("--priority", priority), ("--delay", delay)):
            if value is not None:
                argv.append(f"{flag}={value}")
        argv += [f"--tag={t}" for t in tag_list]
        res = run(db, *argv, "--", kind)
        assert "Traceback" not in res.err and "internal error" not in res.err, res
        if res.code == 0:
            task_id = res.json["id"]
            shown = run(db, "show", str(task_id), "--json")
            assert shown.code == 0, shown
            assert (shown.json["kind"], shown.json["payload"]) == (kind, json.loads(payload or "{}"))
            stored.append(task_id)
        else:
            assert res.code in (1, 2), res
            assert res.out == "" and len(res.err.splitlines()) == 1, res

    check()
    assert stored, "no example was accepted"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (len(set(stored)),)
    finally:
        conn.close()
