"""Network job kinds: `upload.s3`, `upload.http` and `download.http` (SPEC §5).

Every kind validates its payload with a JSON schema at submit, in the engine and in a
Client alike (http(s) URLs without user:password, no Authorization/Cookie header, no field
for a secret). What a schema cannot say — that the files exist now, and the defaults of a
network task: group = the endpoint's host, dedup key = source + destination — is done by
`prepare()` / `submission()` / `submit()` here, which the window's dialogs and scripts call;
the handlers check the files again when they run and fail for good, naming the input, when
one is gone.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core import Client, Engine, InvalidSubmission, Submission, SubmitResult
from core.jobs.net import download, http_upload, s3
from core.jobs.net.common import (
    SECRET_HEADER_NAMES,
    absolute_inputs,
    dedup_key,
    display,
    host_of,
    is_text,
    redact_url,
)

KINDS = (s3.KIND, http_upload.KIND, download.KIND)


def register_network(engine: Engine) -> None:
    """Register upload.s3 (and its part kinds), upload.http and download.http on `engine`,
    each checking its payload at submit and filling its group, dedup key and label."""
    for module in (s3, http_upload, download):
        module.register(engine, validate=_validator(module.KIND), defaults=_defaults(module.KIND))


def _validator(kind: str) -> Callable[[Any], dict[str, Any]]:
    return functools.partial(checked, kind)


def _defaults(kind: str) -> Callable[[Any], dict[str, Any]]:
    return lambda payload: prepare(kind, payload)[1]


def checked(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload with absolute paths, once its files exist (see `prepare`)."""
    return prepare(kind, payload)[0]


def prepare(kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check what a network payload names on this machine and fill its defaults.

    Returns (payload with absolute paths, submit options: group, key, label). Raises
    InvalidSubmission naming the field: a secret header, a missing file or folder, a URL that
    names one file for many."""
    if kind not in KINDS:
        raise InvalidSubmission("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(payload, Mapping):
        raise InvalidSubmission("payload", f"must be an object, got {type(payload).__name__}")
    p = dict(payload)
    for name in p.get("headers") or {}:
        if isinstance(name, str) and name.lower() in SECRET_HEADER_NAMES:
            raise InvalidSubmission(
                f"payload.headers.{name}", "not allowed: name a keyring entry in `credentials` instead"
            )
    if kind == download.KIND:
        out = p.get("output_dir")
        if not isinstance(out, str) or not out:
            raise InvalidSubmission("payload.output_dir", "a folder is required")
        folder = Path(out).expanduser()
        if not folder.is_dir():
            raise InvalidSubmission("payload.output_dir", f"{out} is not an existing folder")
        p["output_dir"] = str(folder.resolve())
        url = str(p.get("url", ""))
        options = {
            "group": host_of(url),
            "key": dedup_key(kind, url, p["output_dir"]),
            "label": f"{p.get('filename') or download.name_from_url(url)} ← {host_of(url)}",
        }
        return p, options
    inputs = p.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidSubmission("payload.inputs", "a non-empty list of files and folders is required")
    files = 0
    for i, raw in enumerate(inputs):
        if isinstance(raw, str) and not is_text(raw):  # no UTF-8 text (the database) holds it
            raise InvalidSubmission(
                f"payload.inputs[{i}]",
                f"{display(raw)} is not a UTF-8 name: give its folder instead, or rename it",
            )
        path = Path(str(raw)).expanduser()
        if not path.exists():
            raise InvalidSubmission(f"payload.inputs[{i}]", f"no such file or folder: {raw}")
        if not os.access(path, os.R_OK):
            raise InvalidSubmission(f"payload.inputs[{i}]", f"{raw} cannot be read (permission denied)")
        files += 2 if path.is_dir() else 1
    p["inputs"] = absolute_inputs(str(x) for x in inputs)
    first = Path(p["inputs"][0]).name + (f" and {len(inputs) - 1} more" if len(inputs) > 1 else "")
    if kind == s3.KIND:
        bucket = str(p.get("bucket", ""))
        prefix = s3.normalized_prefix(p.get("prefix"))
        dest = [p.get("endpoint_url"), bucket, prefix]
        options = {
            "group": s3.group_for(p),
            "key": dedup_key(kind, sorted(p["inputs"]), dest),
            "label": f"{first} → s3://{bucket}/{prefix}",
        }
        return p, options
    url = str(p.get("url", ""))
    if files > 1 and not url.endswith("/"):
        raise InvalidSubmission(
            "payload.url", "names one file (no trailing '/') but the inputs hold several; end it with '/'"
        )
    options = {
        "group": host_of(url),
        "key": dedup_key(kind, sorted(p["inputs"]), [url, p.get("method", "PUT"), bool(p.get("webdav"))]),
        "label": f"{first} → {redact_url(url)}",
    }
    return p, options


def submission(kind: str, payload: Mapping[str, Any], **options: Any) -> Submission:
    """A Submission of a network kind with its defaults (options given here win)."""
    checked, defaults = prepare(kind, payload)
    return Submission(kind, checked, **{**defaults, **options})


async def submit(
    target: Engine | Client, kind: str, payload: Mapping[str, Any], **options: Any
) -> SubmitResult:
    """Check, default and submit a network task to an Engine or a Client."""
    sub = submission(kind, payload, **options)
    return (await target.submit_many([sub]))[0]


__all__ = ["KINDS", "checked", "prepare", "register_network", "submission", "submit"]
