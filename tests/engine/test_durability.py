"""Commits at both durabilities: NORMAL commits on the loop thread, FULL hands each COMMIT
(its fsync) to the writer thread. Either way nobody hears "done" before the commit, an
operation that fails rolls back alone, and a COMMIT that fails fails its whole batch and
publishes none of its events."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig, InvalidDependency, Submission, TaskState
from core.store.db import connect
from core.store.writer import EventSink, RawEvent, Writer

from ..conftest import noop


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_given_either_durability_when_submits_return_then_their_rows_are_already_committed(
    db_path: Path, synchronous: str
) -> None:
    async with await Engine.open(db_path, EngineConfig(synchronous=synchronous)) as eng:
        eng.register("noop", noop)
        await eng.start()
        other = sqlite3.connect(db_path)  # another connection sees only what is committed
        ids = []
        for _ in range(50):
            task_id = (await eng.submit("noop")).id
            assert other.execute("SELECT count(*) FROM tasks WHERE id = ?", (task_id,)).fetchone() == (1,)
            ids.append(task_id)
        for task_id in ids:
            assert (await eng.wait(task_id, timeout=30)).state is TaskState.COMPLETED
        other.close()
        seqs = []
        for task_id in ids:
            log = eng.events_of(task_id)
            assert [e.kind.value for e in log] == ["submitted", "started", "completed"]
            seqs += [e.seq for e in log]
        assert len(set(seqs)) == len(seqs)


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_given_a_batch_of_concurrent_submits_when_one_fails_then_only_that_one_is_rolled_back(
    db_path: Path, synchronous: str
) -> None:
    async with await Engine.open(db_path, EngineConfig(synchronous=synchronous)) as eng:
        eng.register("noop", noop)
        subs = [Submission("noop", label=f"t{i}") for i in range(6)]
        subs[3] = Submission("noop", label="bad", depends_on=[987654])
        results = await asyncio.gather(*(eng.submit_many([s]) for s in subs), return_exceptions=True)
        assert isinstance(results[3], InvalidDependency) and "987654" in str(results[3])
        good = [r for i, r in enumerate(results) if i != 3]
        assert all(isinstance(r, list) and len(r) == 1 for r in good)
        labels = sorted(t.label or "" for t in eng.tasks())
        assert labels == ["t0", "t1", "t2", "t4", "t5"]


@dataclass
class BareWriter:
    """A Writer on its own database file, with no engine around it."""

    path: str
    conn: sqlite3.Connection
    sink: EventSink
    published: list[RawEvent]
    writer: Writer


@pytest.fixture(params=[False, True], ids=["inline", "thread"])
def bare(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BareWriter]:
    """Inline: statements and COMMIT on the loop (NORMAL); thread: every batch on the
    writer thread (FULL)."""
    threaded: bool = request.param
    path = str(tmp_path / "w.db")
    conn = connect(path, synchronous="FULL" if threaded else "NORMAL")
    sink = EventSink()
    published: list[RawEvent] = []
    writer = Writer(conn, sink=sink, publish=published.extend, always_threaded=threaded)
    yield BareWriter(path, conn, sink, published, writer)
    writer.close()
    conn.close()


async def test_given_a_commit_that_fails_then_the_whole_batch_fails_and_publishes_no_event(
    bare: BareWriter,
) -> None:
    """A deferred foreign key is checked at COMMIT: a real COMMIT failure, no fault injection."""
    conn, sink, published, writer = bare.conn, bare.sink, bare.published, bare.writer
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE child (id INTEGER PRIMARY KEY, "
        "parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )

    def insert(table: str, row_id: int, parent: int | None = None) -> Any:
        def op(c: sqlite3.Connection) -> int:
            if table == "parent":
                c.execute("INSERT INTO parent (id) VALUES (?)", (row_id,))
            else:
                c.execute("INSERT INTO child (id, parent) VALUES (?, ?)", (row_id, parent))
            sink.pending.append((row_id, 0.0, f"{table}-{row_id}", None, None, None, None))
            return row_id

        return op

    # Queued together: one COMMIT, which the orphan child makes fail.
    heard: list[tuple[Any, BaseException | None]] = []
    writer.enqueue(insert("parent", 1), callback=lambda r, e: heard.append((r, e)))
    writer.enqueue(insert("child", 11, parent=99), callback=lambda r, e: heard.append((r, e)))
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await writer.run(insert("child", 10, parent=1))
    assert [r for r, _ in heard] == [None, None]
    assert all(isinstance(e, sqlite3.IntegrityError) for _, e in heard)
    assert published == []
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (0,)
    # The writer goes on: the next batch commits and publishes.
    assert await writer.run(insert("parent", 2)) == 2
    assert [e[2] for e in published] == ["parent-2"]
    await writer.drain()


async def test_given_the_write_lock_taken_while_a_failed_batch_restarts_then_it_fails_alone_and_writing_goes_on(
    bare: BareWriter,
) -> None:
    """An engine operation fails, the writer rolls back and begins again, and in between
    another process takes the write lock: the batch fails (its callback hears why), and
    the writer neither hangs nor loses the next write."""
    conn, writer = bare.conn, bare.writer
    conn.execute("CREATE TABLE t (x)")
    other = sqlite3.connect(bare.path, isolation_level=None)

    def grab_the_lock_and_fail(c: sqlite3.Connection) -> None:
        c.execute("ROLLBACK")  # as if the writer's own rollback had just happened
        other.execute("BEGIN IMMEDIATE")
        raise RuntimeError("the operation failed")

    heard: list[BaseException | None] = []
    writer.enqueue(grab_the_lock_and_fail, callback=lambda _r, e: heard.append(e))
    writer.flush()
    for _ in range(200):
        if heard:
            break
        await asyncio.sleep(0.01)
    assert len(heard) == 1 and heard[0] is not None
    other.execute("ROLLBACK")
    assert (
        await asyncio.wait_for(writer.run(lambda c: c.execute("INSERT INTO t VALUES (1)").rowcount), 10) == 1
    )
    await asyncio.wait_for(writer.drain(), 10)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    other.close()


async def test_given_an_engine_operation_failing_in_a_shared_batch_then_no_event_of_that_batch_is_published(
    bare: BareWriter,
) -> None:
    conn, sink, published, writer = bare.conn, bare.sink, bare.published, bare.writer
    conn.execute("CREATE TABLE t (x)")

    def first(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (1)")
        sink.pending.append((1, 0.0, "first", None, None, None, None))

    def second(c: sqlite3.Connection) -> None:
        raise RuntimeError("second failed")

    heard: list[BaseException | None] = []
    writer.enqueue(first, callback=lambda _r, e: heard.append(e))
    writer.enqueue(second, callback=lambda _r, e: heard.append(e))
    writer.flush()
    await asyncio.wait_for(writer.drain(), 10)
    assert [str(e) for e in heard] == ["second failed", "second failed"]
    assert published == [] and conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
