"""Saved upload targets: where "New upload" and dropped files send files.

They are an app setting in the database ("upload_targets"), so every window and Client on
that database sees the same list. A target holds the kind, the endpoint and the name of a
keyring entry, never a secret (SPEC §5: secrets stay in the keyring).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core import InvalidArgument

SETTING = "upload_targets"
S3 = "s3"
HTTP = "http"
MAX_NAME = 100
MIN_PART, MAX_PART = 5 * 1024 * 1024, 5 * 1024**3  # S3's part sizes


class SettingsStore(Protocol):
    def get_setting(self, name: str, default: Any = None) -> Any: ...

    async def set_setting(self, name: str, value: Any) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One saved destination. `kind` is S3 or HTTP (WebDAV is HTTP with `webdav`)."""

    name: str
    kind: str
    endpoint_url: str = ""
    region: str = ""
    bucket: str = ""
    prefix: str = ""
    url: str = ""
    method: str = "PUT"
    webdav: bool = False
    credentials: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # HTTP: extra request headers, in order
    part_size: int = 0  # S3: bytes per part of a multipart upload; 0 is the kind's default

    @property
    def job_kind(self) -> str:
        return "upload.s3" if self.kind == S3 else "upload.http"

    def payload(self, inputs: list[str]) -> dict[str, Any]:
        """An upload payload sending `inputs` here (only the fields that are set)."""
        p: dict[str, Any] = {"inputs": list(inputs)}
        if self.kind == S3:
            p["bucket"] = self.bucket
            for key in ("endpoint_url", "region", "prefix"):
                value = getattr(self, key)
                if value:
                    p[key] = value
            if self.part_size:
                p["part_size"] = self.part_size
        else:
            p["url"] = self.url
            if self.webdav:
                p["webdav"] = True
            elif self.method != "PUT":
                p["method"] = self.method
            if self.headers:
                p["headers"] = dict(self.headers)
        if self.credentials:
            p["credentials"] = self.credentials
        return p

    def describe(self) -> str:
        if self.kind == S3:
            where = f"s3://{self.bucket}/{self.prefix.lstrip('/')}"
            return where + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        return ("WebDAV " if self.webdav else f"{self.method} ") + self.url

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("endpoint_url", "region", "bucket", "prefix", "url", "credentials"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.kind == HTTP:
            out["method"] = self.method
            out["webdav"] = self.webdav
            if self.headers:
                out["headers"] = dict(self.headers)
        elif self.part_size:
            out["part_size"] = self.part_size
        return out

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> Target:
        kind = data.get("kind")
        if kind not in (S3, HTTP):
            raise InvalidArgument(f"target {name!r}: kind must be {S3!r} or {HTTP!r}, got {kind!r}")

        def text(key: str, default: str = "") -> str:
            value = data.get(key, default)
            return value if isinstance(value, str) else default

        return cls(
            name=name,
            kind=str(kind),
            endpoint_url=text("endpoint_url"),
            region=text("region"),
            bucket=text("bucket"),
            prefix=text("prefix"),
            url=text("url"),
            method=text("method", "PUT") or "PUT",
            webdav=bool(data.get("webdav", False)),
            credentials=text("credentials"),
            headers=_headers(data.get("headers")),
            part_size=_part_size(data.get("part_size")),
        )


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    """Saved headers; anything that is not a mapping of text to text is left out."""
    if not isinstance(raw, Mapping):
        return ()
    return tuple((k, v) for k, v in raw.items() if isinstance(k, str) and isinstance(v, str))


def _part_size(raw: Any) -> int:
    """A saved part size S3 accepts (5 MiB to 5 GiB), else 0: the kind's default."""
    ok = isinstance(raw, int) and not isinstance(raw, bool) and MIN_PART <= raw <= MAX_PART
    return raw if ok else 0


def check_name(name: str) -> str:
    text = name.strip()
    if not text:
        raise InvalidArgument("name: a target needs a name")
    if len(text) > MAX_NAME:
        raise InvalidArgument(f"name: at most {MAX_NAME} characters, got {len(text)}")
    return text


def load(store: SettingsStore) -> list[Target]:
    """The saved targets by name; entries that do not parse are left out."""
    raw = store.get_setting(SETTING, {})
    out = []
    if isinstance(raw, Mapping):
        for name, data in sorted(raw.items()):
            if isinstance(name, str) and isinstance(data, Mapping):
                try:
                    out.append(Target.from_json(name, data))
                except InvalidArgument:
                    continue
    return out


async def save(store: SettingsStore, target: Target) -> None:
    """Create or replace the target of that name."""
    name = check_name(target.name)
    raw = store.get_setting(SETTING, {})
    doc = dict(raw) if isinstance(raw, Mapping) else {}
    doc[name] = target.to_json()
    await store.set_setting(SETTING, doc)


async def delete(store: SettingsStore, name: str) -> bool:
    raw = store.get_setting(SETTING, {})
    doc = dict(raw) if isinstance(raw, Mapping) else {}
    if name not in doc:
        return False
    del doc[name]
    await store.set_setting(SETTING, doc or None)
    return True
