"""Opening databases: migrations, backups, newer or foreign files, integrity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core import CorruptDatabase, Engine, SchemaTooNew, TaskState
from core.store import db as store_db


def test_given_the_migrations_then_they_are_numbered_without_gaps() -> None:
    found = store_db.migrations()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1))
    assert len(found) == store_db.SCHEMA_VERSION


def test_given_a_script_then_statements_are_split_on_complete_statements() -> None:
    script = "-- c\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nCREATE TABLE b (y);\n"
    assert store_db.split_statements(script) == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "CREATE TABLE b (y);",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        store_db.split_statements("CREATE TABLE c (z")


async def test_given_a_newer_database_then_it_is_refused_and_left_untouched(db_path: Path) -> None:
    eng = await Engine.open(db_path)
    await eng.stop()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    before = db_path.read_bytes()
    with pytest.raises(SchemaTooNew) as info:
        await Engine.open(db_path)
    assert "schema version 99" in str(info.value) and "upgrade Taskdeck" in str(info.value)
    assert db_path.read_bytes() == before
    second = await Engine.open(db_path.with_name("other.db"))  # the lock was released
    await second.stop()


async def test_given_a_file_that_is_not_a_database_then_corrupt_database_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"these are my notes, not SQLite" * 100)
    with pytest.raises(CorruptDatabase) as info:
        await Engine.open(bad)
    assert str(bad) in str(info.value)
    assert bad.read_bytes().startswith(b"these are my notes")


async def test_given_a_foreign_sqlite_database_then_it_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE photos (id)")
    with pytest.raises(CorruptDatabase, match="not made by Taskdeck"):
        await Engine.open(other)


async def test_given_an_older_schema_then_it_is_backed_up_and_migrated(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = await Engine.open(db_path)
    eng.register("noop", _noop)
    await eng.start()
    await eng.hold()
    kept = (await eng.submit("noop", {"keep": True})).id
    await eng.stop()
    shipped = store_db.migrations()
    old, new = len(shipped), len(shipped) + 1
    extra = (new, f"{new:04d}_test_column.sql", "ALTER TABLE tasks ADD COLUMN note TEXT;\n")
    monkeypatch.setattr(store_db, "migrations", lambda: [*shipped, extra])
    monkeypatch.setattr(store_db, "SCHEMA_VERSION", new)
    eng = await Engine.open(db_path)
    eng.register("noop", _noop)
    rec = eng.get(kept)
    assert rec is not None and rec.payload == {"keep": True} and rec.state is TaskState.PENDING
    await eng.stop()
    backup = Path(f"{db_path}.v{old}.bak")
    assert backup.exists() and backup.stat().st_mode & 0o077 == 0
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (old,)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (new,)
        assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]


async def test_given_a_failing_migration_then_nothing_of_it_is_applied(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = await Engine.open(db_path)
    await eng.stop()
    shipped = store_db.migrations()
    new = len(shipped) + 1
    bad = (
        new,
        f"{new:04d}_bad.sql",
        "ALTER TABLE tasks ADD COLUMN ok TEXT;\nALTER TABLE nope ADD COLUMN x;\n",
    )
    monkeypatch.setattr(store_db, "migrations", lambda: [*shipped, bad])
    monkeypatch.setattr(store_db, "SCHEMA_VERSION", new)
    with pytest.raises(sqlite3.OperationalError):
        await Engine.open(db_path)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (new - 1,)
        assert "ok" not in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]


async def test_given_ids_then_they_are_never_reused_after_history_is_deleted(db_path: Path) -> None:
    eng = await Engine.open(db_path)
    eng.register("noop", _noop)
    await eng.start()
    ids = [(await eng.submit("noop")).id for _ in range(3)]
    for i in ids:
        await eng.wait(i, timeout=10)
    assert await eng.delete_history(ids) == 3
    await eng.stop()
    eng = await Engine.open(db_path)
    eng.register("noop", _noop)
    assert (await eng.submit("noop")).id == ids[-1] + 1
    await eng.stop()


async def _noop(ctx, payload):  # type: ignore[no-untyped-def]
    return None


async def test_given_a_new_file_then_it_gets_small_pages_and_an_old_file_keeps_its_own(
    tmp_path: Path,
) -> None:
    fresh = tmp_path / "fresh.db"
    async with await Engine.open(fresh):
        pass
    with sqlite3.connect(fresh) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (store_db.PAGE_SIZE,)
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE unrelated (x)")
        conn.execute("DROP TABLE unrelated")
    async with await Engine.open(old) as eng:
        eng.register("noop", _noop)
        await eng.start()
        task_id = (await eng.submit("noop")).id
        assert (await eng.wait(task_id, timeout=10)).state is TaskState.COMPLETED
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (4096,)
