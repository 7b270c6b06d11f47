"""Built-in job kinds. They use only core's public API.

- `demo.sleep` (demo.py): watch the engine work.
- `resize.images` / `resize.image` (resize.py): photos -> resized copies, one child per image.
- `files.copy` (files.py): copy, move or sync a folder.
- `command.run` (command.py): run a program.

`validate(kind, payload)` runs a kind's submit-time checks that its JSON schema cannot
express (paths exist, patterns are safe); the window and the CLI may call it before
submitting. Handlers run the same checks and fail for good with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core import Engine
from core.jobs import command, demo, files, resize

VALIDATORS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    resize.KIND: resize.validate,
    files.KIND: files.validate,
    command.KIND: command.validate,
}


def validate(kind: str, payload: Any) -> Any:
    """Raise InvalidSubmission (naming the field) if `payload` cannot run as `kind`; returns
    the payload with normalised paths. Kinds without extra checks pass it through.
    A resize payload naming a preset must be expanded first (`presets.apply`)."""
    check = VALIDATORS.get(kind)
    if check is None:
        return payload
    if not isinstance(payload, Mapping):
        from core import InvalidSubmission

        raise InvalidSubmission("payload", f"must be an object, got {type(payload).__name__}")
    return check(payload)


def register_builtin(engine: Engine) -> None:
    """Register every built-in kind on `engine`."""
    demo.register(engine)
    resize.register(engine)
    files.register(engine)
    command.register(engine)
