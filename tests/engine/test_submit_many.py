"""submit_many: a batch is one transaction, and submissions alike but for their payloads
(a run) are stored exactly as if each had been submitted on its own."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import (
    Engine,
    EngineConfig,
    InvalidSubmission,
    IoBudget,
    Priority,
    RetryPolicy,
    Submission,
    SubmitOutcome,
    TaskState,
)
from core.testing import FakeClock
from tests.conftest import noop, until

# Fields that must not differ between a task submitted alone and the same one in a batch
# (ids differ, and each lone submit reads the clock afresh).
_SAME = ("kind", "payload", "state", "pause_reasons", "priority", "group", "tags", "label", "key", "attempt",
         "max_retries", "parent_id", "retry_of")  # fmt: skip


def _shape(rec: Any) -> tuple[Any, ...]:
    return tuple(getattr(rec, f) for f in _SAME)


def _columns(path: Path) -> list[tuple[Any, ...]]:
    """Every stored column that does not depend on the id (the engines' fake clocks agree)."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT kind, payload, state, pause_reasons, priority, position, grp, label, dedup_key, parent_id,"
            " schedule_id, retry_of, attempt, max_retries, options, tags, created_at, run_at, expires_at,"
            " (SELECT group_concat(name || '=' || value) FROM task_tags WHERE task_id = tasks.id)"
            " FROM tasks ORDER BY id"
        ).fetchall()


async def _open(path: Path, clock: FakeClock | None = None) -> Engine:
    eng = await Engine.open(path, EngineConfig(clock=clock or FakeClock()))
    eng.register("noop", noop)
    eng.register("shaped", noop, schema={"type": "object", "required": ["n"]})
    return eng


async def test_given_a_run_of_alike_submissions_then_each_row_is_what_a_lone_submit_stores(
    tmp_path: Path,
) -> None:
    opts: dict[str, Any] = {"priority": Priority.HIGH, "group": "g", "label": "resize", "ttl": 60}
    opts["tags"] = {"album": "2026"}
    lone, batch = await _open(tmp_path / "lone.db"), await _open(tmp_path / "batch.db")
    try:
        for i in range(50):
            await lone.submit("noop", {"i": i}, **opts)
        res = await batch.submit_many([Submission("noop", {"i": i}, **opts) for i in range(50)])
        assert [r.outcome for r in res] == [SubmitOutcome.INSERTED] * 50
        assert [r.id for r in res] == list(range(res[0].id, res[0].id + 50))
        assert [_shape(r) for r in batch.tasks(limit=100)] == [_shape(r) for r in lone.tasks(limit=100)]
        assert [r.id for r in batch.tasks(tag=("album", "2026"), limit=100)] == sorted(r.id for r in res)
    finally:
        await lone.stop(grace=0)
        await batch.stop(grace=0)
    assert _columns(tmp_path / "batch.db") == _columns(tmp_path / "lone.db")


async def test_given_a_run_then_its_submitted_events_follow_the_ids_in_order(tmp_path: Path) -> None:
    eng = await _open(tmp_path / "tasks.db")
    try:
        res = await eng.submit_many([Submission("noop", i) for i in range(300)])
        assert [e.kind for e in eng.events_of(res[150].id)] == ["submitted"]
    finally:
        await eng.stop(grace=0)
    with sqlite3.connect(tmp_path / "tasks.db") as conn:
        rows = conn.execute(
            "SELECT seq, task_id FROM events WHERE kind = 'submitted' ORDER BY seq"
        ).fetchall()
    assert [task_id for _, task_id in rows] == [r.id for r in res]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (Submission("noop", {"x": float("nan")}), "payload"),
        (Submission("noop", "x" * (1 << 20)), "payload"),
        (Submission("noop", 1, priority=True), "priority"),  # True == 1, but it is no priority
        (Submission("shaped", {"m": 1}), "payload"),  # misses the schema's required "n"
    ],
)
async def test_given_one_bad_submission_inside_a_run_then_it_is_named_and_nothing_is_written(
    tmp_path: Path, bad: Submission, field: str
) -> None:
    eng = await _open(tmp_path / "tasks.db")
    try:
        await eng.submit("noop", "before")
        kind, priority = bad.kind, 1 if bad.priority is True else None
        payload: Any = {"n": 0} if kind == "shaped" else 0
        subs = [Submission(kind, payload, priority=priority) for _ in range(40)]
        subs[25] = bad
        with pytest.raises(InvalidSubmission) as err:
            await eng.submit_many(subs)
        assert err.value.field == field
        assert str(err.value).startswith(f"submissions[25].{field}")
        assert [r.payload for r in eng.tasks()] == ["before"]
    finally:
        await eng.stop(grace=0)


async def test_given_runs_mixed_with_keyed_and_dependent_submissions_then_results_keep_the_input_order(
    tmp_path: Path,
) -> None:
    eng = await _open(tmp_path / "tasks.db")
    try:
        first = await eng.submit("noop", "dep")
        subs = [
            *[Submission("noop", i) for i in range(10)],
            Submission("noop", "keyed", key="k"),
            Submission("noop", "keyed again", key="k"),
            *[Submission("shaped", {"n": i}) for i in range(10)],
            Submission("noop", "after", depends_on=(first.id,)),
            *[Submission("noop", i, group="g") for i in range(10)],
        ]
        res = await eng.submit_many(subs)
        assert res[11].outcome is SubmitOutcome.DUPLICATE and res[11].id == res[10].id
        inserted = [r.id for i, r in enumerate(res) if i != 11]
        assert inserted == list(range(first.id + 1, first.id + 1 + len(inserted)))
        stored = {r.id: r for r in eng.tasks(limit=100)}
        assert [stored[r.id].payload for i, r in enumerate(res) if i != 11] == [
            s.payload for i, s in enumerate(subs) if i != 11
        ]
        assert stored[res[22].id].state is TaskState.BLOCKED
        assert {stored[r.id].group for r in res[23:]} == {"g"}
    finally:
        await eng.stop(grace=0)


async def test_given_a_paused_group_then_a_run_in_it_is_stored_paused_and_runs_once_resumed(
    tmp_path: Path,
) -> None:
    eng = await _open(tmp_path / "tasks.db")
    await eng.start()
    try:
        await eng.pause_group("g")
        res = await eng.submit_many([Submission("noop", i, group="g") for i in range(20)])
        assert {eng.get(r.id).state for r in res} == {TaskState.PAUSED}  # type: ignore[union-attr]
        await eng.resume_group("g")
        await until(lambda: eng.counts()["completed"] == 20)
    finally:
        await eng.stop(grace=0)


async def test_given_a_run_then_it_runs_in_priority_order_behind_more_urgent_work(tmp_path: Path) -> None:
    eng = await _open(tmp_path / "tasks.db")
    order: list[Any] = []

    async def record(ctx: Any, payload: Any) -> None:
        order.append(payload)

    eng.register("rec", record)
    await eng.set_max_concurrency(1)
    try:
        await eng.submit_many([Submission("rec", f"low{i}", priority=Priority.LOW) for i in range(5)])
        await eng.submit_many([Submission("rec", f"high{i}", priority=Priority.HIGH) for i in range(5)])
        await eng.start()
        await until(lambda: len(order) == 10)
        assert order == [f"high{i}" for i in range(5)] + [f"low{i}" for i in range(5)]
    finally:
        await eng.stop(grace=0)


async def test_given_a_delayed_run_then_its_tasks_start_when_the_clock_reaches_them(tmp_path: Path) -> None:
    clock = FakeClock()
    eng = await _open(tmp_path / "tasks.db", clock)
    await eng.start()
    try:
        res = await eng.submit_many([Submission("noop", i, delay=30) for i in range(20)])
        await asyncio.sleep(0.05)
        assert eng.counts()["pending"] == 20
        clock.advance(31)
        await until(lambda: eng.counts()["completed"] == 20)
        assert all(eng.get(r.id).state is TaskState.COMPLETED for r in res)  # type: ignore[union-attr]
    finally:
        await eng.stop(grace=0)


# The repeated hour of a DST change: equal datetimes an hour apart (fold 0 and 1).
_AMBIGUOUS = datetime(2030, 11, 3, 1, 30, tzinfo=ZoneInfo("America/New_York"))

# Batches drawn from few distinct options, so that runs form, with the odd bad value, and
# pairs of options that are equal (==) but do not store the same.
_option_sets = st.sampled_from(
    [
        {},
        {"priority": 200},
        {"priority": True},
        {"group": "g", "tags": {"a": "b"}},
        {"tags": {"a": "1", "b": "2"}},
        {"tags": {"b": "2", "a": "1"}},
        {"retry": RetryPolicy(base=1.0)},
        {"retry": RetryPolicy(base=1)},
        {"io": IoBudget(disk_read=1.0)},
        {"io": IoBudget(disk_read=1)},
        {"run_at": _AMBIGUOUS},
        {"run_at": _AMBIGUOUS.replace(fold=1)},
        {"label": "x" * 300},
        {"key": "k"},
        {"delay": 5},
        {"ttl": -1},
    ]
)
_payloads = st.none() | st.integers() | st.text(max_size=5) | st.just(float("nan")) | st.just({"n": 1})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(batch=[("noop", 0, {"run_at": _AMBIGUOUS}), ("noop", 1, {"run_at": _AMBIGUOUS.replace(fold=1)})])
@example(batch=[("noop", 0, {"tags": {"a": "1", "b": "2"}}), ("noop", 1, {"tags": {"b": "2", "a": "1"}})])
@example(batch=[("noop", 0, {"retry": RetryPolicy(base=1.0)}), ("noop", 1, {"retry": RetryPolicy(base=1)})])
@given(batch=st.lists(st.tuples(st.sampled_from(["noop", "shaped"]), _payloads, _option_sets), max_size=12))
def test_given_arbitrary_batches_then_submit_many_stores_what_lone_submits_store(batch: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_compare(Path(d), batch))


async def _compare(d: Path, batch: list[Any]) -> None:
    lone, many = await _open(d / "lone.db"), await _open(d / "many.db")
    first_bad: tuple[int, str] | None = None
    try:
        for i, (kind, payload, opts) in enumerate(batch):
            try:
                await lone.submit(kind, payload, **opts)
            except InvalidSubmission as e:
                first_bad = (i, e.field)
                break
        subs = [Submission(kind, payload, **opts) for kind, payload, opts in batch]
        if first_bad is None:
            await many.submit_many(subs)
        else:
            index, field = first_bad
            with pytest.raises(InvalidSubmission, match=rf"^submissions\[{index}\]\.{field}") as err:
                await many.submit_many(subs)
            assert err.value.field == field
            assert many.tasks() == []
    finally:
        await lone.stop(grace=0)
        await many.stop(grace=0)
    if first_bad is None:
        assert _columns(d / "many.db") == _columns(d / "lone.db")
