"""Opening a database: file modes, pragmas, numbered forward migrations, backups."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from importlib import resources
from pathlib import Path

from core.errors import CorruptDatabase, SchemaTooNew

logger = logging.getLogger(__name__)

MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 5000
PAGE_SIZE = 2048  # bytes, for new database files (see connect)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL text) of every shipped migration, in order."""
    found = []
    for entry in resources.files("core.store.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise RuntimeError(f"migration {name} is out of sequence (expected {expected:04d})")
    return found


SCHEMA_VERSION = len(migrations())


def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements (executescript would commit on its own)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement at end of script: {buf.strip()[:60]!r}")
    return statements


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only (SQLite gives -wal/-shm the
    same mode as the database file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def connect(path: str, *, synchronous: str = "NORMAL", readonly: bool = False) -> sqlite3.Connection:
    """A connection with Taskdeck's pragmas. Transactions are managed explicitly."""
    if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous: must be NORMAL, FULL or EXTRA, got {synchronous!r}")
    if path != MEMORY and not readonly:
        _create_private_file(Path(path))
    uri = f"file:{Path(path).resolve()}?mode=ro" if readonly else path
    try:
        conn = sqlite3.connect(
            uri, isolation_level=None, check_same_thread=False, uri=readonly, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as e:
        raise CorruptDatabase(path, str(e)) from e
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if path != MEMORY and not readonly and os.path.getsize(path) == 0:
            # Before anything is written (WAL fixes the page size for good): every commit
            # appends each page it touched to the WAL, so smaller pages make the commits
            # of the task life cheaper (a no-op task's commit: 24 µs at 4096, 13 at 2048).
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        if path != MEMORY and not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise CorruptDatabase(path, f"cannot switch to WAL journal mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise CorruptDatabase(path, str(e)) from e
    return conn


def schema_version(conn: sqlite3.Connection, path: str) -> int:
    """0 for an empty database; raises CorruptDatabase for a foreign one."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return 0
        if "schema_version" not in tables:
            raise CorruptDatabase(path, "it has tables but no schema_version table (not made by Taskdeck)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise CorruptDatabase(path, str(e)) from e
    if row is None:
        raise CorruptDatabase(path, "the schema_version table is empty")
    return int(row[0])


def backup(conn: sqlite3.Connection, path: str, version: int) -> Path:
    """Copy the database beside itself before migrating it; returns the copy's path."""
    target = Path(f"{path}.v{version}.bak")
    n = 1
    while target.exists():
        target = Path(f"{path}.v{version}.bak.{n}")
        n += 1
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    dest = sqlite3.connect(target)
    try:
        conn.backup(dest)
    finally:
        dest.close()
    logger.info("backed up %s (schema %d) to %s before migrating", path, version, target)
    return target


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the schema up to date, one transaction per migration; returns the old version."""
    found = schema_version(conn, path)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(path, found, SCHEMA_VERSION)
    if found == SCHEMA_VERSION:
        return found
    if found > 0 and path != MEMORY:
        backup(conn, path, found)
    for version, name, script in migrations():
        if version <= found:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 1:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            for statement in split_statements(script):
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        logger.info("applied migration %s to %s", name, path)
    return found
