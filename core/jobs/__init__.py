"""Built-in job kinds. They use only core's public API.

- `demo.sleep` (demo.py): watch the engine work.
- `resize.images` / `resize.image` (resize.py): photos -> resized copies, one child per image.
- `files.copy` (files.py): copy, move or sync a folder.
- `command.run` (command.py): run a program.
- `upload.s3`, `upload.http`, `download.http` (net/): uploads and downloads.

`validate(kind, payload)` runs a kind's submit-time checks that its JSON schema cannot
express (paths exist, patterns are safe); `defaults(kind, payload)` gives the group, dedup
key and label a task of that kind gets when its submitter names none. An engine runs both
itself (they are registered with the kinds); the window and the CLI, which may submit
through a Client to an engine in another process, call them before submitting. Handlers
run the same checks and fail for good with the same message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from core import Engine, InvalidSubmission, KindInfo
from core.jobs import command, demo, files, net, resize

VALIDATORS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    resize.KIND: resize.validate,
    files.KIND: files.validate,
    command.KIND: command.validate,
    **{kind: functools.partial(net.checked, kind) for kind in net.KINDS},
}


def validate(kind: str, payload: Any) -> Any:
    """Raise InvalidSubmission (naming the field) if `payload` cannot run as `kind`; returns
    the payload with normalised paths. Kinds without extra checks pass it through.
    A resize payload naming a preset must be expanded first (`presets.apply`)."""
    check = VALIDATORS.get(kind)
    if check is None:
        return payload
    if not isinstance(payload, Mapping):
        raise InvalidSubmission("payload", f"must be an object, got {type(payload).__name__}")
    return check(payload)


def defaults(kind: str, payload: Any) -> dict[str, Any]:
    """The group, dedup key and label of a task of `kind` (only network kinds have them)."""
    if kind not in net.KINDS or not isinstance(payload, Mapping):
        return {}
    return net.prepare(kind, payload)[1]


# Kinds a built-in job spawns for its parts (one image, one part of a multipart upload...):
# registered so the engine can run them, never offered for submitting on their own.
PART_KINDS = frozenset({resize.CHILD_KIND, net.s3.PART, net.s3.OBJECT, net.s3.COMPLETE})


def offered(kinds: list[KindInfo]) -> list[KindInfo]:
    """`kinds` without the part kinds: those a person may submit or schedule."""
    return [k for k in kinds if k.kind not in PART_KINDS]


def register_builtin(engine: Engine) -> None:
    """Register every built-in kind on `engine`."""
    demo.register(engine)
    resize.register(engine)
    files.register(engine)
    command.register(engine)
    net.register_network(engine)
