"""What the built-in kinds share: the plain ctx surface, payload checks that the JSON
schema cannot express, paths that must stay inside a folder, throttled progress."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from core import InvalidSubmission, Permanent

Payload = dict[str, Any]


class PlainContext(Protocol):
    """The ctx of a handler that runs in a thread or a worker process (plain calls)."""

    @property
    def id(self) -> int: ...

    @property
    def attempt(self) -> int: ...

    @property
    def resume_data(self) -> Any: ...

    @property
    def interrupted(self) -> bool: ...

    def progress(
        self,
        fraction: float | None = None,
        message: str | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> None: ...

    def record_io(self, read: int = 0, written: int = 0, sent: int = 0, received: int = 0) -> None: ...

    def log(self, message: str, level: str = "info") -> None: ...

    def checkpoint(self, data: Any) -> None: ...

    def yield_point(self) -> None: ...


def checked(validate: Callable[[Mapping[str, Any]], Payload], payload: Any) -> Payload:
    """Run a kind's submit-time checks inside its handler: an InvalidSubmission becomes a
    Permanent failure with the same one-line message (retrying cannot fix a payload)."""
    if not isinstance(payload, Mapping):
        raise Permanent(f"payload: must be an object, got {type(payload).__name__}")
    try:
        return validate(payload)
    except InvalidSubmission as e:
        raise Permanent(str(e)) from None


def absolute_path(field: str, value: Any) -> str:
    """`value` as an absolute, normalised path (a leading ~ is expanded). Relative paths
    are refused: the engine may run in another process with another working folder."""
    if not isinstance(value, str) or not value:
        raise InvalidSubmission(field, f"must be a non-empty path, got {value!r}")
    if "\0" in value:
        raise InvalidSubmission(field, "must not contain a NUL character")
    path = os.path.expanduser(value)
    if not os.path.isabs(path):
        raise InvalidSubmission(field, f"must be an absolute path, got {value!r}")
    return os.path.normpath(path)


def is_within(root: str, path: str) -> bool:
    """Whether `path` is `root` or below it, after resolving symlinks of both."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


class Throttle:
    """True at most once per `interval` seconds (monotonic): for progress reports."""

    __slots__ = ("_interval", "_next")

    def __init__(self, interval: float = 0.2) -> None:
        self._interval = interval
        self._next = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval
        return True


def shown(path: str) -> str:
    """A path as text SQLite and JSON accept: bytes of a file name that are not UTF-8
    (held as surrogates by Python) become U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def short_list(items: list[str], limit: int = 3) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def titled(schema: dict[str, Any], titles: Mapping[str, str]) -> dict[str, Any]:
    """`schema` with a JSON Schema "title" on each property: the words a form shows for
    it (the window's generic job form, the schedule dialog). Every property needs one."""
    props = schema["properties"]
    missing = sorted(set(props) - set(titles))
    unknown = sorted(set(titles) - set(props))
    if missing or unknown:
        raise ValueError(f"titles: missing {missing}, unknown {unknown}")
    for key, title in titles.items():
        props[key]["title"] = title
    return schema
