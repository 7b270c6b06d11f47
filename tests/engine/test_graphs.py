"""Dependencies and graphs; fan-out inside one task with ctx.map; recovery of both."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core import (
    DependencyFailed,
    Engine,
    EngineConfig,
    Interrupted,
    InvalidDependency,
    Permanent,
    RetryPolicy,
    Submission,
    TaskState,
)
from core.testing import FakeClock
from tests.conftest import until


class Gate:
    def __init__(self) -> None:
        self.events: dict[Any, asyncio.Event] = {}
        self.ran: list[Any] = []

    def __call__(self, name: Any) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())


@pytest.fixture
async def eng(db_path: Path, clock: FakeClock) -> Any:
    gate = Gate()

    async def step(ctx: Any, payload: Any) -> Any:
        name = payload["name"]
        gate.ran.append(name)
        if payload.get("wait"):
            await gate(name).wait()
        if payload.get("fail"):
            raise Permanent(f"{name} broke")
        inputs = [await ctx.result_of(d) for d in payload.get("inputs", [])]
        return {"name": name, "sum": payload.get("value", 0) + sum(i["sum"] for i in inputs)}

    engine = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=1))
    engine.register("step", step, retry=RetryPolicy.none())
    await engine.start()
    engine.gate = gate  # type: ignore[attr-defined]
    yield engine
    await engine.stop(grace=0)


async def test_given_a_dependency_then_the_dependent_is_blocked_until_it_completes(eng: Engine) -> None:
    gate: Gate = eng.gate  # type: ignore[attr-defined]
    first = await eng.submit("step", {"name": "fetch", "wait": True, "value": 1})
    second = await eng.submit("step", {"name": "resize", "inputs": [first.id]}, depends_on=[first.id])
    rec = eng.get(second.id)
    assert (
        rec is not None
        and rec.state is TaskState.BLOCKED
        and rec.wait_reason == f"blocked — waiting for #{first.id}"
    )
    gate("fetch").set()
    done = await eng.wait(second.id, timeout=10)
    assert done.state is TaskState.COMPLETED and done.result == {"name": "resize", "sum": 1}
    assert [e.kind for e in eng.events_of(second.id)][:3] == ["submitted", "blocked", "unblocked"]
    assert eng.dependencies(second.id) == [first.id] and eng.dependents(first.id) == [second.id]


async def test_given_a_diamond_graph_then_results_flow_to_the_join(eng: Engine) -> None:
    ids = await eng.submit_graph({
        "top": Submission("step", {"name": "top", "value": 1}),
        "left": Submission("step", {"name": "left", "value": 10}, depends_on=("top",)),
        "right": Submission("step", {"name": "right", "value": 100}, depends_on=("top",)),
        "bottom": Submission("step", {"name": "bottom"}, depends_on=("left", "right")),
    })  # fmt: skip
    rec = await eng.wait(ids["bottom"], timeout=10)
    assert rec.state is TaskState.COMPLETED
    # bottom's payload names no inputs: read them through result_of in a second pass
    assert sorted(eng.dependencies(ids["bottom"])) == sorted([ids["left"], ids["right"]])
    gate: Gate = eng.gate  # type: ignore[attr-defined]
    assert gate.ran[0] == "top" and gate.ran[-1] == "bottom"


async def test_given_a_graph_with_inputs_by_id_then_result_of_reads_them(eng: Engine) -> None:
    a = await eng.submit("step", {"name": "a", "value": 2})
    b = await eng.submit("step", {"name": "b", "value": 3})
    c = await eng.submit("step", {"name": "c", "inputs": [a.id, b.id]}, depends_on=[a.id, b.id])
    assert (await eng.wait(c.id, timeout=10)).result == {"name": "c", "sum": 5}


async def test_given_a_cycle_then_submit_graph_writes_nothing(eng: Engine) -> None:
    with pytest.raises(InvalidDependency, match="dependency cycle: a -> c -> b -> a"):
        await eng.submit_graph({
            "a": Submission("step", {"name": "a"}, depends_on=("c",)),
            "b": Submission("step", {"name": "b"}, depends_on=("a",)),
            "c": Submission("step", {"name": "c"}, depends_on=("b",)),
        })  # fmt: skip
    with pytest.raises(InvalidDependency, match="depends on 'nope', which is not in the graph"):
        await eng.submit_graph({"a": Submission("step", {"name": "a"}, depends_on=("nope",))})
    assert sum(eng.counts().values()) == 0


async def test_given_missing_or_failed_dependencies_then_submit_refuses_before_writing(eng: Engine) -> None:
    with pytest.raises(InvalidDependency, match="task 999 does not exist"):
        await eng.submit("step", {"name": "x"}, depends_on=[999])
    failed = await eng.wait((await eng.submit("step", {"name": "f", "fail": True})).id, timeout=10)
    with pytest.raises(DependencyFailed, match=f"task {failed.id} already ended \\(failed\\)"):
        await eng.submit("step", {"name": "y"}, depends_on=[failed.id])
    assert sum(eng.counts().values()) == 1
    ok = await eng.submit("step", {"name": "z"}, depends_on=[failed.id], on_dependency_failure="ignore")
    assert (await eng.wait(ok.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_a_dependency_fails_later_then_dependents_fail_down_the_graph(eng: Engine) -> None:
    gate: Gate = eng.gate  # type: ignore[attr-defined]
    root = await eng.submit("step", {"name": "root", "wait": True, "fail": True})
    mid = await eng.submit("step", {"name": "mid"}, depends_on=[root.id])
    leaf = await eng.submit("step", {"name": "leaf"}, depends_on=[mid.id])
    tolerant = await eng.submit(
        "step", {"name": "tolerant"}, depends_on=[root.id], on_dependency_failure="ignore"
    )
    gate("root").set()
    assert (await eng.wait(root.id, timeout=10)).state is TaskState.FAILED
    mid_rec = await eng.wait(mid.id, timeout=10)
    assert (
        mid_rec.state is TaskState.DEPENDENCY_FAILED and mid_rec.error == f"dependency task {root.id} failed"
    )
    leaf_rec = await eng.wait(leaf.id, timeout=10)
    assert (
        leaf_rec.state is TaskState.DEPENDENCY_FAILED
        and leaf_rec.error == f"dependency task {mid.id} dependency_failed"
    )
    assert (await eng.wait(tolerant.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_a_dependency_is_cancelled_then_its_dependent_fails_too(eng: Engine) -> None:
    await eng.hold()
    a = await eng.submit("step", {"name": "a"})
    b = await eng.submit("step", {"name": "b"}, depends_on=[a.id])
    await eng.cancel(a.id)
    assert (await eng.wait(b.id, timeout=10)).state is TaskState.DEPENDENCY_FAILED


async def test_given_ctx_map_then_results_come_in_order_with_failures_in_their_slots(
    db_path: Path, clock: FakeClock
) -> None:
    tries: dict[int, int] = {}
    seen_progress: list[float] = []

    async def square(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        await asyncio.sleep(0.001 * (5 - x))  # finish out of order
        if x == 3 and tries[x] < 2:
            raise ConnectionError("flaky")  # retried once
        if x == 4:
            raise ValueError("four is bad")  # fails every time
        return x * x

    async def batch(ctx: Any, payload: Any) -> list[Any]:
        out = await ctx.map(range(6), square, concurrency=2, retry=RetryPolicy.fixed(2, 0.0))
        seen_progress.append(ctx._run.progress)
        return [r if isinstance(r, int) else f"error: {r}" for r in out]

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("batch", batch)
    await eng.start()
    rec = await eng.wait((await eng.submit("batch")).id, timeout=10)
    assert rec.result == [0, 1, 4, 9, "error: four is bad", 25]
    assert tries[3] == 2 and tries[4] == 3
    assert seen_progress == [1.0]
    await eng.stop()


async def test_given_ctx_map_when_the_task_is_cancelled_then_it_stops_launching_items(
    db_path: Path, clock: FakeClock
) -> None:
    started: list[int] = []

    async def slow(x: int) -> int:
        started.append(x)
        await asyncio.sleep(0.01)
        return x

    async def batch(ctx: Any, payload: Any) -> Any:
        return await ctx.map(range(1000), slow, concurrency=2)

    eng = await Engine.open(db_path, EngineConfig(clock=clock, preempt_grace=5))
    eng.register("batch", batch)
    await eng.start()
    res = await eng.submit("batch")
    await until(lambda: len(started) >= 4)
    await eng.cancel(res.id)
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.CANCELLED and len(started) < 100
    await eng.stop()
    assert Interrupted  # the handler saw Interrupted, raised out of map


async def test_given_a_waiting_parent_whose_children_ended_before_a_stop_then_reopen_finalizes_it(
    db_path: Path, clock: FakeClock
) -> None:
    release = asyncio.Event()
    finals: list[int] = []

    async def child(ctx: Any, payload: Any) -> int:
        await release.wait()
        return payload

    async def parent(ctx: Any, payload: Any) -> None:
        await ctx.spawn_children([Submission("child", i) for i in range(3)])

    async def final(ctx: Any, payload: Any, children: Any) -> int:
        finals.append(ctx.id)
        return sum(c.result for c in children)

    def setup(e: Engine) -> None:
        e.register("child", child)
        e.register("parent", parent, finalize=final)

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    setup(eng)
    await eng.start()
    res = await eng.submit("parent")
    await until(lambda: eng.get(res.id).state is TaskState.WAITING)  # type: ignore[union-attr]
    await eng.hold()  # children finish, but the finalize run may not start
    release.set()
    await until(lambda: all(k.is_terminal for k in eng.children(res.id)))
    await eng.stop(grace=0)
    # A database left with a waiting parent and ended children (as a crash would leave it):
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE tasks SET state = 'waiting', phase = 'finalize' WHERE id = ?", (res.id,))
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    setup(eng)
    assert eng.last_recovery.finalized == 1
    await eng.start()
    rec = await eng.wait(res.id, timeout=10)
    assert rec.state is TaskState.COMPLETED and rec.result == 3 and finals == [res.id]
    await eng.stop()


async def test_given_a_blocked_task_whose_dependency_ended_while_stopped_then_reopen_unblocks_it(
    db_path: Path, clock: FakeClock
) -> None:
    async def noop(ctx: Any, payload: Any) -> None:
        return None

    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("noop", noop)
    await eng.hold()
    await eng.start()
    a = await eng.submit("noop")
    b = await eng.submit("noop", depends_on=[a.id])
    await eng.stop()
    import sqlite3

    with sqlite3.connect(db_path) as conn:  # the dependency ended, and was pruned away
        conn.execute("DELETE FROM tasks WHERE id = ?", (a.id,))
    eng = await Engine.open(db_path, EngineConfig(clock=clock))
    eng.register("noop", noop)
    assert eng.get(b.id).state is TaskState.PENDING  # type: ignore[union-attr]
    await eng.start()
    assert (await eng.wait(b.id, timeout=10)).state is TaskState.COMPLETED
    await eng.stop()
