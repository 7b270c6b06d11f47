"""Presets: named option sets for a kind ("Web 1600px JPEG q85"), shared by the CLI and
the window.

Kind-agnostic: a kind `define`s which payload fields a preset may set (with their JSON
schema) and its built-in presets, which live in code and cannot be changed. User presets
are stored as one JSON document `{kind: {name: options}}`:

- in the database's settings table (key "presets") when the engine or client passed in
  offers `get_setting(name)` / `set_setting(name, value)`, so every process on that
  database sees the same presets;
- until it does, in `presets.json` in the user's config folder (platformdirs), which
  every process of this user shares. The first read through a settings-capable target
  imports that file, so nothing saved meanwhile is lost.

A payload names a preset with its `preset` field; `apply` fills in the preset's options
wherever the payload has none (the payload's own fields win).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from core import InvalidArgument, InvalidSubmission

SETTING = "presets"
FILE_NAME = "presets.json"
MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Preset:
    kind: str
    name: str
    options: dict[str, Any]
    builtin: bool = False


@dataclass(slots=True)
class _KindPresets:
    fields: tuple[str, ...]
    schema: dict[str, Any]
    builtins: dict[str, dict[str, Any]] = field(default_factory=dict)


_KINDS: dict[str, _KindPresets] = {}


def define(
    kind: str, fields: tuple[str, ...], schema: Mapping[str, Any], builtins: Mapping[str, Mapping[str, Any]]
) -> None:
    """Declare that `kind` has presets: the payload `fields` they may set, the JSON schema
    of those fields (name -> schema) and the built-in presets."""
    _KINDS[kind] = _KindPresets(
        fields=tuple(fields),
        schema={k: dict(v) for k, v in schema.items() if k in fields},
        builtins={name: dict(opts) for name, opts in builtins.items()},
    )


def kinds() -> list[str]:
    return sorted(_KINDS)


def check_options(kind: str, options: Any) -> dict[str, Any]:
    """The options of a preset of `kind`, checked; InvalidSubmission names the field."""
    spec = _spec(kind)
    if not isinstance(options, Mapping) or not options:
        raise InvalidSubmission("preset", "must be a non-empty object of options")
    for name in options:
        if name not in spec.fields:
            raise InvalidSubmission(
                f"preset.{name}", f"is not an option a preset can set (use: {', '.join(spec.fields)})"
            )
    from jsonschema import Draft202012Validator

    schema = {"type": "object", "properties": spec.schema, "additionalProperties": False}
    errors = sorted(Draft202012Validator(schema).iter_errors(dict(options)), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(p) for p in errors[0].path)
        raise InvalidSubmission(f"preset.{where}" if where else "preset", errors[0].message)
    return dict(options)


def _spec(kind: str) -> _KindPresets:
    spec = _KINDS.get(kind)
    if spec is None:
        raise InvalidArgument(f"kind: {kind!r} has no presets (kinds with presets: {', '.join(kinds())})")
    return spec


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"name: must be a non-empty string, got {name!r}")
    text = str(name).strip()
    if len(text) > MAX_NAME:
        raise InvalidArgument(f"name: at most {MAX_NAME} characters, got {len(text)}")
    return text


# -- the API -------------------------------------------------------------------------------


async def list_presets(target: Any, kind: str | None = None, *, path: str | None = None) -> list[Preset]:
    """Built-in then user presets (of `kind`, or of every kind), each group by name.
    `target` is an Engine or a Client; `path` overrides the presets file."""
    user = await _Store.of(target, path).read()
    out = []
    for k in [kind] if kind is not None else kinds():
        spec = _spec(k)
        out += [Preset(k, n, dict(o), builtin=True) for n, o in sorted(spec.builtins.items())]
        out += [Preset(k, n, dict(o)) for n, o in sorted(user.get(k, {}).items()) if n not in spec.builtins]
    return out


async def get_preset(target: Any, kind: str, name: str, *, path: str | None = None) -> Preset:
    """One preset by name; KeyError (naming the ones there are) if there is none."""
    for preset in await list_presets(target, kind, path=path):
        if preset.name == name:
            return preset
    names = ", ".join(repr(p.name) for p in await list_presets(target, kind, path=path))
    raise KeyError(f"no preset named {name!r} for {kind} (there are: {names})")


async def save_preset(
    target: Any, kind: str, name: str, options: Mapping[str, Any], *, path: str | None = None
) -> Preset:
    """Create or replace a user preset. Built-in names cannot be reused (InvalidArgument);
    bad options raise InvalidSubmission naming the field."""
    name = _check_name(name)
    spec = _spec(kind)
    if name in spec.builtins:
        raise InvalidArgument(f"name: {name!r} is a built-in preset; save yours under another name")
    opts = check_options(kind, options)

    def change(doc: dict[str, Any]) -> None:
        doc.setdefault(kind, {})[name] = opts

    await _Store.of(target, path).update(change)
    return Preset(kind, name, opts)


async def delete_preset(target: Any, kind: str, name: str, *, path: str | None = None) -> None:
    """Delete a user preset; KeyError if there is none, InvalidArgument for a built-in."""
    spec = _spec(kind)
    if name in spec.builtins:
        raise InvalidArgument(f"name: {name!r} is a built-in preset and cannot be deleted")
    missing: list[bool] = []

    def change(doc: dict[str, Any]) -> None:
        if name not in doc.get(kind, {}):
            missing.append(True)
            return
        del doc[kind][name]
        if not doc[kind]:
            del doc[kind]

    await _Store.of(target, path).update(change)
    if missing:
        raise KeyError(f"no user preset named {name!r} for {kind}")


async def apply(
    target: Any, kind: str, payload: Mapping[str, Any], *, path: str | None = None
) -> dict[str, Any]:
    """`payload` with the options of the preset it names filled in where it has none.
    The `preset` field stays (it says where the options came from). KeyError for an
    unknown preset."""
    out = dict(payload)
    name = payload.get("preset")
    if name is None:
        return out
    preset = await get_preset(target, kind, name, path=path)
    for key, value in preset.options.items():
        out.setdefault(key, value)
    return out


# -- storage -------------------------------------------------------------------------------


def default_path() -> str:
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("taskdeck"), FILE_NAME)


class _Store:
    @staticmethod
    def of(target: Any, path: str | None) -> _Store:
        if (
            path is None
            and callable(getattr(target, "get_setting", None))
            and callable(getattr(target, "set_setting", None))
        ):
            return _SettingsStore(target)
        return _FileStore(path or default_path())

    async def read(self) -> dict[str, Any]:
        raise NotImplementedError

    async def update(self, change: Any) -> None:
        raise NotImplementedError


class _FileStore(_Store):
    def __init__(self, path: str) -> None:
        self.path = path

    async def read(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"presets file {self.path} cannot be read: {e}") from None
        presets = doc.get("presets") if isinstance(doc, dict) else None
        return presets if isinstance(presets, dict) else {}

    async def update(self, change: Any) -> None:
        await asyncio.to_thread(self._update, change)

    def _update(self, change: Any) -> None:
        folder = os.path.dirname(self.path) or "."
        os.makedirs(folder, mode=0o700, exist_ok=True)
        with self._locked():
            doc = self._read()
            change(doc)
            fd, tmp = tempfile.mkstemp(prefix=".presets-", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"version": 1, "presets": doc}, f, indent=2, sort_keys=True)
                    f.write("\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The window and the CLI may save at once: read-modify-write under a lock."""
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: last writer wins
                pass
            yield
        finally:
            os.close(fd)


class _SettingsStore(_Store):
    def __init__(self, target: Any) -> None:
        self.target = target

    async def _get(self) -> Any:
        value = self.target.get_setting(SETTING)
        return await value if inspect.isawaitable(value) else value

    async def _set(self, doc: dict[str, Any]) -> None:
        done = self.target.set_setting(SETTING, doc)
        if inspect.isawaitable(done):
            await done

    async def read(self) -> dict[str, Any]:
        doc = await self._get()
        if doc is None:
            imported = await _FileStore(default_path()).read()
            if imported:
                await self._set(imported)
            return imported
        return doc if isinstance(doc, dict) else {}

    async def update(self, change: Any) -> None:
        doc = await self.read()
        change(doc)
        await self._set(doc)
