"""The engine lock: an OS file lock beside the database, so a killed holder never
leaves a stale lock behind. The holder's pid is written into the file for messages."""

from __future__ import annotations

import os
import sys

from core.errors import EngineLocked

if sys.platform == "win32":  # pragma: no cover - Taskdeck targets Linux first
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


class EngineLock:
    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.path = f"{db_path}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _try_lock(fd):
            os.close(fd)
            raise EngineLocked(self.db_path, self.holder())
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def holder(self) -> int | None:
        try:
            with open(self.path, encoding="ascii") as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def is_held_elsewhere(self) -> bool:
        """True if another engine holds the lock right now (a probe, not an acquire)."""
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            return not _try_lock(fd)
        finally:
            os.close(fd)  # closing drops a lock we may have just taken

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
