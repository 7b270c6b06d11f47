"""`download.http`: GET a URL into a folder (async httpx, on the loop).

The bytes go to a hidden `.taskdeck-<task id>.part` file beside the destination, renamed
once complete (and verified when a `sha256` is given). After a pause, a retry or a crash
the download goes on from what the part file holds with `Range: bytes=N-` and an
`If-Range` validator (the ETag or Last-Modified of the first response): a 206 appends; a
200 (the server ignores ranges, or the file changed) starts over cleanly. The name is the
payload's `filename`, else the server's Content-Disposition, else the URL's last segment;
an existing file is never overwritten unless `overwrite` is set ("name (1).ext" instead).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import re
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from core import Engine, Permanent, TaskContext
from core.jobs.common import titled
from core.jobs.net.common import (
    ABSOLUTE_PATH,
    BANDWIDTH_SCHEMA,
    CHUNK,
    CREDENTIALS_SCHEMA,
    RETRY,
    AsyncMeter,
    TransferError,
    check_headers,
    format_bytes,
    headers_schema,
    http_failure,
    redact_url,
    schema_defs,
    url_schema,
)
from core.jobs.net.http_upload import client_for, get_auth, transport_failure

KIND = "download.http"
CHECKPOINT_BYTES = 8 * 1024 * 1024  # resume data is refreshed this often while bytes arrive
HASH_CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": schema_defs(),
    "required": ["url", "output_dir"],
    "properties": {
        "url": url_schema("what to download (http or https)"),
        "output_dir": {
            "type": "string",
            "minLength": 1,
            "maxLength": 4096,
            **ABSOLUTE_PATH,
            "description": "the folder to save into (absolute)",
        },
        "filename": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"^(?!\.\.?$)[^/\\\x00]+$",
            "description": (
                "a plain file name, no '/' (default: the server's Content-Disposition, "
                "else the URL's last segment)"
            ),
        },
        "sha256": {
            "type": "string",
            "pattern": "^[0-9a-fA-F]{64}$",
            "description": "expected SHA-256 of the file (hex): checked before it is kept",
        },
        "overwrite": {"type": "boolean", "description": "replace an existing file (false: 'name (1).ext')"},
        "headers": headers_schema(),
        "credentials": CREDENTIALS_SCHEMA,
        "bandwidth_limit": BANDWIDTH_SCHEMA,
    },
    "additionalProperties": False,
}
titled(
    SCHEMA,
    {
        "url": "Address",
        "output_dir": "Save into",
        "filename": "File name",
        "sha256": "SHA-256",
        "overwrite": "Replace an existing file",
        "headers": "Headers",
        "credentials": "Credentials",
        "bandwidth_limit": "Bandwidth limit (bytes/s)",
    },
)


# -- names ------------------------------------------------------------------------------


MAX_NAME_BYTES = 200  # a server's name is cut to this: room for " (9999)" under 255


def safe_name(name: str | None) -> str | None:
    """A file name a server (or a payload) suggested, reduced to a plain name in the
    folder: no path, no control character, no leading or trailing dot or space, at most
    MAX_NAME_BYTES in UTF-8 (cut before the extension); None when nothing usable is left."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f" and not "\ud800" <= ch <= "\udfff")
    name = name.strip(" .")
    if len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        if not stem or len(ext) > 16:
            stem, dot, ext = name, "", ""
        room = MAX_NAME_BYTES - len(f"{dot}{ext}".encode())
        name = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .") + dot + ext
    return name or None


def name_from_url(url: str) -> str:
    return safe_name(unquote(urlsplit(url).path.rsplit("/", 1)[-1])) or "download"


def name_from_disposition(value: str | None) -> str | None:
    """The file name of a Content-Disposition header; filename*= (RFC 6266, any charset)
    wins over filename=."""
    if not value:
        return None
    msg = Message()
    msg["content-disposition"] = value
    plain: str | None = None
    try:
        params: list[tuple[str, Any]] = msg.get_params(header="content-disposition", failobj=[])
        for key, param in params:  # typeshed says str; RFC 2231 values come as tuples
            if key.lower() != "filename":
                continue
            if isinstance(param, tuple):  # filename*=charset'lang'value, decoded
                return safe_name(email.utils.collapse_rfc2231_value(param))
            plain = plain or safe_name(str(param))
    except (ValueError, LookupError):
        return None
    return plain


def free_path(folder: Path, name: str) -> Path:
    """folder/name, or folder/"name (1).ext" … when that exists."""
    path = folder / name
    if not os.path.lexists(path):  # a dangling link is taken too
        return path
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension (or a dot file)
        stem, dot, ext = name, "", ""
    for n in range(1, 10_000):
        candidate = folder / f"{stem} ({n}){dot}{ext}"
        if not os.path.lexists(candidate):
            return candidate
    raise Permanent(f"output_dir: too many files named like {name} in {folder}")


def part_path(folder: Path, task_id: int) -> Path:
    return folder / f".taskdeck-{task_id}.part"


def validator_of(response: httpx.Response) -> str | None:
    """What If-Range may carry: a strong ETag, else Last-Modified (a weak ETag cannot)."""
    etag: str | None = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    modified: str | None = response.headers.get("Last-Modified")
    return modified


# -- the handler ------------------------------------------------------------------------


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _keep(part: Path, folder: Path, name: str, overwrite: bool) -> Path:
    final = folder / name if overwrite else free_path(folder, name)
    os.replace(part, final)
    return final


async def download(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Download a URL into a folder, resuming by Range where the server allows it."""
    url: str = payload["url"]
    folder = Path(payload["output_dir"])
    if not await asyncio.to_thread(folder.is_dir):
        raise Permanent(f"output_dir: {folder} is not an existing folder")
    headers = {**check_headers(payload.get("headers")), "Accept-Encoding": "identity"}
    auth = await get_auth(payload)
    state: dict[str, Any] = dict(ctx.resume_data or {})
    part = part_path(folder, ctx.id)
    have = await asyncio.to_thread(_file_size, part)
    if have and not state.get("validator"):
        have = 0  # nothing tells whether the server still has the same file: start over
    shown = redact_url(url)
    what = f"GET {shown}"
    async with client_for(auth, follow_redirects=True) as client:
        try:
            try:
                total = await _get(ctx, client, url, headers, payload, state, part, have, what)
            except _StartOver as e:
                ctx.log(f"{e}: starting over")
                await asyncio.to_thread(part.unlink, True)
                state.clear()
                total = await _get(ctx, client, url, headers, payload, state, part, 0, what)
        except httpx.HTTPError as e:
            raise transport_failure(ctx, e, what) from e
    size = await asyncio.to_thread(_file_size, part)
    if total is not None and size != total:
        raise TransferError(f"{what}: got {size} of {total} bytes; the rest follows on the next attempt")
    ctx.progress(done=size, total=size, message="verifying")
    digest = await asyncio.to_thread(_sha256_of, part)
    expected = payload.get("sha256")
    if expected and digest != expected.lower():
        await asyncio.to_thread(part.unlink, True)
        raise Permanent(f"sha256 mismatch for {shown}: expected {expected.lower()}, got {digest}")
    name = str(state.get("name") or name_from_url(url))
    final = await asyncio.to_thread(_keep, part, folder, name, bool(payload.get("overwrite")))
    ctx.log(f"saved {final.name} ({format_bytes(size)})")
    return {"path": str(final), "bytes": size, "sha256": digest, "url": shown}


class _StartOver(Exception):
    """The bytes the part file holds cannot be continued (the message says why)."""


async def _get(
    ctx: TaskContext,
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    payload: dict[str, Any],
    state: dict[str, Any],
    part: Path,
    have: int,
    what: str,
) -> int | None:
    """One GET into the part file, from byte `have` (then with Range and If-Range)."""
    request_headers = dict(headers)
    if have:
        request_headers["Range"] = f"bytes={have}-"
        request_headers["If-Range"] = state["validator"]
    async with client.stream("GET", url, headers=request_headers) as response:
        return await _receive(ctx, response, payload, state, part, have, what)


async def _receive(
    ctx: TaskContext,
    response: httpx.Response,
    payload: dict[str, Any],
    state: dict[str, Any],
    part: Path,
    have: int,
    what: str,
) -> int | None:
    """Write the response body to the part file (appending after a 206); returns the size
    the whole file should have (None when the server does not say). Raises _StartOver when
    a 206 cannot continue what the part file holds: another range, or another file (its
    validator or size differ: a server that ignores If-Range)."""
    status = response.status_code
    if status == 416 and have and state.get("total") == have:
        return have  # everything arrived before the interruption
    if status == 416 and have:
        raise _StartOver("the server refused the range")
    if status == 206 and have:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != have:
            raise _StartOver("the server sent another range than asked")
        total = None if match.group(3) == "*" else int(match.group(3))
        now = validator_of(response)
        if now is not None and now != state.get("validator"):
            raise _StartOver("the file changed on the server (another ETag or Last-Modified)")
        if total is not None and state.get("total") is not None and total != state["total"]:
            raise _StartOver(f"the file changed on the server (now {total} bytes, was {state['total']})")
        mode = "ab"
        ctx.log(f"resuming at byte {have}")
    elif status == 200:
        if have:
            ctx.log("the server sent the whole file again (no range support, or it changed): starting over")
        have = 0
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        mode = "wb"
        name = safe_name(payload.get("filename")) or name_from_disposition(
            response.headers.get("Content-Disposition")
        )
        state.clear()
        state.update(
            name=name or name_from_url(str(response.url)),
            validator=validator_of(response),
            total=total,
        )
    else:
        raise http_failure(ctx, status, what, response.reason_phrase if status >= 400 else "")
    await ctx.checkpoint(dict(state))
    meter = AsyncMeter(ctx, total, done=have, message=f"downloading {state['name']}")
    meter.sent = False
    fh = await asyncio.to_thread(open, part, mode)
    try:
        since = 0
        async for chunk in response.aiter_raw(CHUNK):
            await meter.take(len(chunk))
            await asyncio.to_thread(fh.write, chunk)
            meter.moved(len(chunk))
            since += len(chunk)
            if since >= CHECKPOINT_BYTES:
                await asyncio.to_thread(fh.flush)
                await ctx.checkpoint({**state, "bytes": meter.done})
                since = 0
    finally:
        await asyncio.to_thread(fh.close)
    meter.report()
    return total


def make_cleanup() -> Any:
    async def cleanup(ctx: TaskContext, payload: dict[str, Any], reason: str) -> None:
        """Remove the part file of a download cancelled or failed for good."""
        part = part_path(Path(payload["output_dir"]), ctx.id)
        if await asyncio.to_thread(part.exists):
            await asyncio.to_thread(part.unlink, True)
            ctx.log(f"{reason}: removed the partial download")

    return cleanup


def register(engine: Engine, **hooks: Any) -> None:
    """`hooks`: the submit-time validate and defaults of the kind (see core.jobs.net)."""
    engine.register(
        KIND,
        download,
        retry=RETRY,
        schema=SCHEMA,
        cleanup=make_cleanup(),
        description="Download a URL into a folder (resumes by Range; optional sha256 check)",
        **hooks,
    )
