"""Children, siblings, finalize and joins: a parent waits for its parts."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest

from core import (
    ChildOutcome,
    Engine,
    EngineConfig,
    InvalidState,
    JoinFailed,
    Permanent,
    Priority,
    RetryPolicy,
    Submission,
    TaskState,
    join_all,
    join_percentage,
    join_quorum,
)
from core.testing import FakeClock
from tests.conftest import until


async def part(ctx: Any, payload: Any) -> Any:
    """A child: fails when told to, else returns its payload."""
    if isinstance(payload, dict) and payload.get("fail"):
        raise Permanent(f"part {payload.get('n')} is corrupt")
    if isinstance(payload, dict) and payload.get("hang"):
        while True:
            await ctx.yield_point()
            await asyncio.sleep(0.005)
    return payload


async def fan_out(ctx: Any, payload: Any) -> str:
    """A parent: one child per item of payload['parts']."""
    await ctx.spawn_children([Submission(payload.get("kind", "part"), p) for p in payload["parts"]])
    return "spawned"


finalized: list[tuple[int, list[ChildOutcome]]] = []


async def summarize(ctx: Any, payload: Any, children: list[ChildOutcome]) -> dict[str, Any]:
    finalized.append((ctx.id, children))
    if payload.get("join") == "quorum":
        return {"got": join_quorum(children, payload["n"])}
    if payload.get("join") == "percentage":
        return {"got": join_percentage(children, payload["p"])}
    return {"got": join_all(children)}


@pytest.fixture
async def eng(db_path: Path, clock: FakeClock) -> Any:
    finalized.clear()
    engine = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=1))
    engine.register("part", part, retry=RetryPolicy.none())
    engine.register("parent", fan_out, finalize=summarize, retry=RetryPolicy.none())
    engine.register("plain_parent", fan_out, retry=RetryPolicy.none())
    await engine.start()
    yield engine
    await engine.stop(grace=0)


async def test_given_a_parent_then_it_waits_for_its_children_and_finalize_sees_their_results(
    eng: Engine,
) -> None:
    res = await eng.submit("parent", {"parts": [1, 2, 3]})
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.COMPLETED and rec.result == {"got": [1, 2, 3]}
    kids = eng.children(res.id)
    assert [k.payload for k in kids] == [1, 2, 3] and all(k.parent_id == res.id for k in kids)
    ((pid, outcomes),) = finalized
    assert pid == res.id and [(c.state, c.result) for c in outcomes] == [
        ("completed", 1),
        ("completed", 2),
        ("completed", 3),
    ]
    kinds = [e.kind for e in eng.events_of(res.id)]
    assert kinds == ["submitted", "started", "waiting", "finalizing", "started", "completed"]


async def test_given_a_parent_without_finalize_then_it_completes_with_its_handlers_result(
    eng: Engine,
) -> None:
    res = await eng.submit("plain_parent", {"parts": ["a", "b"]})
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.COMPLETED and rec.result == "spawned"


async def test_given_fail_fast_when_a_child_fails_then_siblings_are_cancelled_and_the_parent_fails(
    eng: Engine,
) -> None:
    res = await eng.submit(
        "plain_parent", {"parts": [{"hang": True}, {"fail": True, "n": 2}, {"hang": True}]}
    )
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.FAILED and rec.error == "child task 3 failed: part 2 is corrupt"
    await until(lambda: all(k.is_terminal for k in eng.children(res.id)))
    states = [k.state for k in eng.children(res.id)]
    assert states == ["cancelled", "failed", "cancelled"]  # siblings are in history as cancelled


async def test_given_no_fail_fast_and_no_finalize_then_the_parent_fails_naming_how_many_failed(
    eng: Engine,
) -> None:
    res = await eng.submit("plain_parent", {"parts": [1, {"fail": True}, 3, {"fail": True}]}, fail_fast=False)
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.FAILED and rec.error == "2 of 4 children failed"
    assert sorted(k.state for k in eng.children(res.id)) == ["completed", "completed", "failed", "failed"]


@pytest.mark.parametrize(
    ("join", "fails", "ok"),
    [({"join": "quorum", "n": 2}, 1, True), ({"join": "quorum", "n": 4}, 1, False),
     ({"join": "percentage", "p": 0.5}, 2, True), ({"join": "percentage", "p": 0.75}, 2, False)],
)  # fmt: skip
async def test_given_no_fail_fast_then_finalize_joins_by_quorum_or_percentage(
    eng: Engine, join: dict[str, Any], fails: int, ok: bool
) -> None:
    parts: list[Any] = [{"fail": True, "n": i} for i in range(fails)] + [10, 20, 30][: 4 - fails]
    res = await eng.submit("parent", {"parts": parts, **join}, fail_fast=False)
    rec = await eng.wait(res.id, timeout=10)
    if ok:
        assert rec.state is TaskState.COMPLETED and rec.result == {"got": [10, 20, 30][: 4 - fails]}
    else:
        assert rec.state is TaskState.FAILED and rec.error is not None and rec.error.startswith("join needs")


def test_given_join_helpers_then_they_name_the_children_that_failed() -> None:
    kids = [ChildOutcome(1, TaskState.COMPLETED, "a", None), ChildOutcome(2, TaskState.FAILED, None, "boom")]
    assert join_quorum(kids, 1) == ["a"]
    with pytest.raises(JoinFailed, match=r"join needs all of 2 children, 1 completed \(#2 failed: boom\)"):
        join_all(kids)
    assert join_percentage([], 1.0) == []


async def test_given_three_levels_with_fail_fast_when_a_grandchild_fails_then_the_whole_tree_fails(
    db_path: Path, clock: FakeClock
) -> None:
    async def top(ctx: Any, payload: Any) -> None:
        await ctx.spawn_child("middle", payload, fail_fast=payload["fail_fast"])
        await ctx.spawn_child("leaf", {"hang": True})

    async def middle(ctx: Any, payload: Any) -> None:
        await ctx.spawn_child("leaf", {"fail": payload["fail"]})
        await ctx.spawn_child("leaf", {"n": 2, "hang": payload["fail_fast"]})

    for fail_fast in (True, False):
        eng = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=1))
        eng.register("top", top, retry=RetryPolicy.none())
        eng.register("middle", middle, retry=RetryPolicy.none())
        eng.register("leaf", part, retry=RetryPolicy.none())
        await eng.start()
        res = await eng.submit("top", {"fail": True, "fail_fast": fail_fast})
        rec = await eng.wait(res.id, timeout=10)
        middle_rec = next(k for k in eng.children(res.id) if k.kind == "middle")
        assert middle_rec.state is TaskState.FAILED
        if fail_fast:
            assert rec.state is TaskState.FAILED and rec.error.startswith(
                f"child task {middle_rec.id} failed"
            )
            kids_of = functools.partial(eng.children, middle_rec.id)
            await until(lambda: all(k.is_terminal for k in kids_of()))  # noqa: B023
            assert [k.state for k in eng.children(middle_rec.id)] == ["failed", "cancelled"]
        else:  # the middle still fails (its grandchild failed), and the top fails fast on it
            assert middle_rec.error == "1 of 2 children failed"
            assert rec.state is TaskState.FAILED
        await eng.stop(grace=0)


async def test_given_a_parent_is_cancelled_then_its_whole_subtree_is_cancelled(eng: Engine) -> None:
    res = await eng.submit("plain_parent", {"parts": [{"hang": True}] * 3})
    await until(lambda: eng.get(res.id).state is TaskState.WAITING)  # type: ignore[union-attr]
    assert eng.get(res.id).wait_reason == "waiting for 3 parts"  # type: ignore[union-attr]
    await eng.cancel(res.id)
    await until(lambda: all(k.state is TaskState.CANCELLED for k in eng.children(res.id)))
    assert eng.get(res.id).state is TaskState.CANCELLED  # type: ignore[union-attr]


async def test_given_a_waiting_parent_holds_no_slot_then_fifty_children_at_concurrency_two_finish(
    db_path: Path, clock: FakeClock
) -> None:
    eng = await Engine.open(db_path, EngineConfig(clock=clock, max_concurrency=2))
    eng.register("part", part)
    eng.register("parent", fan_out, finalize=summarize)
    await eng.start()
    parents = [(await eng.submit("parent", {"parts": list(range(50))})).id for _ in range(3)]
    for p in parents:
        rec = await eng.wait(p, timeout=30)
        assert rec.state is TaskState.COMPLETED and rec.result == {"got": list(range(50))}
    await eng.stop()


async def test_given_children_then_they_inherit_priority_and_group_unless_given(eng: Engine) -> None:
    async def spawner(ctx: Any, payload: Any) -> None:
        await ctx.spawn_child("part", 1)
        await ctx.spawn_child("part", 2, priority=Priority.LOW, group="own")

    eng.register("spawner", spawner)
    res = await eng.submit("spawner", priority=Priority.HIGH, group="s3://photos")
    await eng.wait(res.id, timeout=10)
    a, b = eng.children(res.id)
    assert (a.priority, a.group) == (Priority.HIGH, "s3://photos")
    assert (b.priority, b.group) == (Priority.LOW, "own")


async def test_given_a_paused_parent_then_its_pending_children_pause_and_resume_with_it(eng: Engine) -> None:
    await eng.set_max_concurrency(1)
    res = await eng.submit("plain_parent", {"parts": [{"hang": True}, 2, 3]})
    await until(lambda: eng.get(res.id).state is TaskState.WAITING)  # type: ignore[union-attr]
    await eng.pause(res.id)
    await until(lambda: all(k.state is TaskState.PAUSED for k in eng.children(res.id)))
    await eng.resume(res.id)
    await until(lambda: not any(k.state is TaskState.PAUSED for k in eng.children(res.id)))
    await eng.cancel(res.id)


async def test_given_siblings_then_they_share_the_parent_and_a_root_cannot_have_any(eng: Engine) -> None:
    seen: dict[str, Any] = {}

    async def first(ctx: Any, payload: Any) -> None:
        seen["sibling"] = (await ctx.spawn_sibling("part", "sib")).id

    async def root(ctx: Any, payload: Any) -> None:
        await ctx.spawn_child("first")
        try:
            await ctx.spawn_sibling("part", "x")
        except InvalidState as e:
            seen["error"] = str(e)

    eng.register("first", first)
    eng.register("root", root)
    res = await eng.submit("root")
    assert (await eng.wait(res.id, timeout=10)).state is TaskState.COMPLETED
    assert sorted(k.id for k in eng.children(res.id)) == sorted([res.id + 1, seen["sibling"]])
    assert "has no parent" in seen["error"]


async def test_given_a_tree_fails_then_the_parents_cleanup_runs(db_path: Path, clock: FakeClock) -> None:
    cleaned: list[str] = []

    async def abort(ctx: Any, payload: Any, reason: str) -> None:
        cleaned.append(reason)

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("part", part, retry=RetryPolicy.none())
    eng.register("upload", fan_out, cleanup=abort, retry=RetryPolicy.none())
    await eng.start()
    res = await eng.submit("upload", {"parts": [{"fail": True}]})
    await eng.wait(res.id, timeout=10)
    await until(lambda: cleaned == ["failed"])
    await eng.stop()


async def test_given_children_that_report_bytes_then_the_parent_shows_part_k_of_n(eng: Engine) -> None:
    release = asyncio.Event()

    async def chunk(ctx: Any, payload: Any) -> None:
        ctx.progress(done=payload, total=100)
        if payload == 50:
            await release.wait()

    eng.register("chunk", chunk)
    res = await eng.submit("plain_parent", {"parts": [100, 100, 50], "kind": "chunk"})
    await until(
        lambda: eng.get(res.id).state is TaskState.WAITING and eng.children(res.id)[2].bytes_done == 50
    )  # type: ignore[union-attr]
    rec = eng.get(res.id)
    assert rec is not None and rec.bytes_done == 250 and rec.bytes_total == 300
    assert rec.progress == pytest.approx(250 / 300) and rec.progress_message == "part 3 of 3"
    release.set()
    await eng.wait(res.id, timeout=10)
