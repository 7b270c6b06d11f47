"""Which registered kind takes dropped files, and how: a kind whose payload schema has a
string property `path`/`file`/`source`, or a list property `inputs`/`files`/`paths`.
Each file becomes one task, deduplicated by a key so dropping it twice queues it once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from core import KindInfo

SINGLE = ("path", "file", "source")
MANY = ("inputs", "files", "paths")


@dataclass(frozen=True, slots=True)
class FileTarget:
    kind: str
    field: str
    many: bool

    def payload(self, path: str) -> dict[str, Any]:
        return {self.field: [path] if self.many else path}

    def key(self, path: str) -> str:
        return f"{self.kind}:{os.path.abspath(path)}"


def file_targets(kinds: list[KindInfo]) -> list[FileTarget]:
    out = []
    for info in kinds:
        props: dict[str, Any] = (info.schema or {}).get("properties") or {}
        required = set((info.schema or {}).get("required") or [])
        for f in SINGLE:
            spec = props.get(f)
            if isinstance(spec, dict) and _is(spec, "string") and required <= {f}:
                out.append(FileTarget(info.kind, f, False))
                break
        else:
            for f in MANY:
                spec = props.get(f)
                if isinstance(spec, dict) and _is(spec, "array") and required <= {f}:
                    out.append(FileTarget(info.kind, f, True))
                    break
    return out


def _is(spec: dict[str, Any], kind: str) -> bool:
    t = spec.get("type")
    return t == kind or (isinstance(t, list) and kind in t)
