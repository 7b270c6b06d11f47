"""`upload.http`: files and folders to an HTTP server — PUT, multipart/form-data POST, or
WebDAV PUT after MKCOL of the folders that are missing (async httpx, on the loop).

A `url` ending in "/" is a folder: each file goes to url + its name (a folder's files keep
their relative path under it). Files go one after another; finished files are
checkpointed, so a pause or crash re-sends only the file that was on the way (HTTP has no
standard way to resume a PUT halfway)."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from core import Engine, Permanent, TaskContext
from core.jobs.common import titled
from core.jobs.net import credentials as creds
from core.jobs.net.common import (
    BANDWIDTH_SCHEMA,
    CHUNK,
    CONNECT_TIMEOUT,
    CREDENTIALS_SCHEMA,
    INPUTS_SCHEMA,
    READ_TIMEOUT,
    RETRY,
    AsyncMeter,
    LocalFile,
    TransferError,
    attempt_text,
    check_headers,
    collect_files,
    display,
    format_bytes,
    headers_schema,
    http_failure,
    redact_text,
    redact_url,
    schema_defs,
    url_schema,
)

KIND = "upload.http"
MAX_LISTED = 1000
CHECKPOINT_FILES = 32  # checkpoint after this many small files…
CHECKPOINT_BYTES = 8 * 1024 * 1024  # …or this many bytes, whichever comes first


SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": schema_defs(),
    "required": ["inputs", "url"],
    "properties": {
        "inputs": INPUTS_SCHEMA,
        "url": url_schema("where to send; ending in '/' appends each file's name"),
        "method": {"enum": ["PUT", "POST"], "description": "PUT (default) or multipart/form-data POST"},
        "webdav": {"type": "boolean", "description": "WebDAV: create missing folders (MKCOL) first"},
        "form_field": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "POST: the form field of the file ('file')",
        },
        "headers": headers_schema(),
        "credentials": CREDENTIALS_SCHEMA,
        "bandwidth_limit": BANDWIDTH_SCHEMA,
    },
    "if": {"properties": {"webdav": {"const": True}}, "required": ["webdav"]},
    "then": {"properties": {"method": {"const": "PUT"}}},
    "additionalProperties": False,
}
titled(
    SCHEMA,
    {
        "inputs": "Files",
        "url": "Address",
        "method": "Method",
        "webdav": "WebDAV (create folders)",
        "form_field": "Form field",
        "headers": "Headers",
        "credentials": "Credentials",
        "bandwidth_limit": "Bandwidth limit (bytes/s)",
    },
)


def auth_of(secret: creds.BasicAuth | creds.BearerToken | None) -> httpx.Auth | None:
    if secret is None:
        return None
    if isinstance(secret, creds.BasicAuth):
        return httpx.BasicAuth(secret.username, secret.password)
    return _Bearer(secret.token)


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def client_for(auth: httpx.Auth | None, *, follow_redirects: bool) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        auth=auth,
        follow_redirects=follow_redirects,
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        headers={"User-Agent": "taskdeck"},
    )


def transport_failure(ctx: Any, e: httpx.HTTPError, what: str) -> Exception:
    """A retryable failure for a lost connection or a timeout; Permanent for a bad URL."""
    reason = redact_text(str(e)) or type(e).__name__  # httpx may quote the URL
    if isinstance(
        e, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.TooManyRedirects | httpx.LocalProtocolError
    ):  # what we would send is wrong (a header with a line break, say): no retry mends it
        return Permanent(f"{what}: {reason}")
    if isinstance(e, httpx.ConnectTimeout | httpx.ConnectError):
        return TransferError(f"cannot connect for {what}: {reason} — {attempt_text(ctx)}")
    if isinstance(e, httpx.TimeoutException):
        return TransferError(f"no answer within {READ_TIMEOUT:g} s during {what} — {attempt_text(ctx)}")
    return TransferError(f"connection lost during {what}: {reason} — {attempt_text(ctx)}")


async def get_auth(payload: dict[str, Any]) -> httpx.Auth | None:
    try:
        secret = await asyncio.to_thread(creds.for_http, payload.get("credentials"))
    except creds.CredentialsError as e:
        raise Permanent(str(e)) from e
    return auth_of(secret)


def file_url(url: str, f: LocalFile) -> str:
    """url + the file's relative path (each segment quoted), or url itself for one file."""
    if not url.endswith("/"):
        return url
    return url + "/".join(quote(seg, safe="") for seg in f.rel.split("/"))


async def _file_chunks(path: str, size: int, meter: AsyncMeter) -> AsyncIterator[bytes]:
    """The file's bytes, each chunk drawn from the bandwidth budget first (a pause stops the
    stream: Interrupted out of the generator aborts the request)."""
    fh = await asyncio.to_thread(open, path, "rb")
    try:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            await meter.take(n)
            chunk = await asyncio.to_thread(fh.read, n)
            if not chunk:
                raise Permanent(f"{display(path)} became shorter while it was being sent")
            left -= len(chunk)
            yield chunk
            meter.moved(len(chunk))
    finally:
        await asyncio.to_thread(fh.close)


async def _multipart(
    head: bytes, tail: bytes, path: str, size: int, meter: AsyncMeter
) -> AsyncIterator[bytes]:
    yield head
    async for chunk in _file_chunks(path, size, meter):
        yield chunk
    yield tail


def _form_head(boundary: str, field: str, filename: str, content_type: str) -> bytes:
    # RFC 7578: the file name goes as UTF-8, with quotes and line breaks percent-escaped
    safe = filename.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{safe}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


async def _send_file(
    ctx: Any,
    client: httpx.AsyncClient,
    payload: dict[str, Any],
    f: LocalFile,
    target: str,
    headers: dict[str, str],
    meter: AsyncMeter,
) -> httpx.Response:
    method = payload.get("method", "PUT")
    content_type = mimetypes.guess_type(f.path)[0] or "application/octet-stream"
    what = f"{method} {redact_url(target)}"
    start = meter.done
    if method == "POST":
        boundary = f"taskdeck-{uuid.uuid4().hex}"
        head = _form_head(boundary, payload.get("form_field", "file"), f.rel.rsplit("/", 1)[-1], content_type)
        tail = f"\r\n--{boundary}--\r\n".encode()
        body: AsyncIterator[bytes] = _multipart(head, tail, f.path, f.size, meter)
        length = len(head) + f.size + len(tail)
        send_headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    else:
        body = _file_chunks(f.path, f.size, meter)
        length = f.size
        send_headers = {"Content-Type": content_type}
    send_headers = {**send_headers, **headers, "Content-Length": str(length)}
    try:
        response = await client.request(method, target, content=body, headers=send_headers)
    except httpx.HTTPError as e:
        meter.done = start  # the file goes again from its start next time
        raise transport_failure(ctx, e, what) from e
    finally:
        await body.aclose()  # type: ignore[attr-defined]  # close the file at once, even when stopped
    if not 200 <= response.status_code < 300:
        meter.done = start
        if 300 <= response.status_code < 400:
            location = redact_url(response.headers.get("Location", "?"))
            raise Permanent(f"{what} was redirected to {location}: give that URL instead")
        raise http_failure(ctx, response.status_code, what)
    return response


async def _mkcol(ctx: Any, client: httpx.AsyncClient, url: str, known: set[str], depth: int = 0) -> None:
    """Make the WebDAV collection `url` (ending in "/") unless it exists; a missing parent
    (409 Conflict) is made first."""
    if url in known:
        return
    response = await _request(ctx, client, "MKCOL", url)
    if response.status_code == 409 and depth < 32:
        parts = urlsplit(url)
        parent = parts.path.rstrip("/").rsplit("/", 1)[0] + "/"
        if parent != parts.path:
            await _mkcol(ctx, client, urlunsplit(parts._replace(path=parent)), known, depth + 1)
            response = await _request(ctx, client, "MKCOL", url)
    # 201 made it; 405 (or a redirect to it) means it is there already
    if response.status_code not in (200, 201, 204, 301, 302, 405):
        raise http_failure(ctx, response.status_code, f"MKCOL {redact_url(url)}")
    known.add(url)


async def _request(ctx: Any, client: httpx.AsyncClient, method: str, url: str) -> httpx.Response:
    try:  # "Content-Length: 0" says plainly there is no body (some servers would wait for one)
        return await client.request(method, url, headers={"Content-Length": "0"})
    except httpx.HTTPError as e:
        raise transport_failure(ctx, e, f"{method} {redact_url(url)}") from e


def folder_urls(url: str, f: LocalFile) -> list[str]:
    """The WebDAV collections a file needs, outermost first: the URL's own folder, then
    each folder of the file's relative path under it."""
    base = url if url.endswith("/") else url.rsplit("/", 1)[0] + "/"
    out = [base]
    if url.endswith("/"):
        for seg in f.rel.split("/")[:-1]:
            out.append(out[-1] + quote(seg, safe="") + "/")
    return out


def _done_mark(f: LocalFile) -> str:
    return hashlib.sha256(f.rel.encode()).hexdigest()[:16]


async def upload(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Upload files and folders by HTTP PUT, multipart POST or WebDAV."""
    url: str = payload["url"]
    files = await asyncio.to_thread(collect_files, payload["inputs"])
    if len(files) > 1 and not url.endswith("/"):
        raise Permanent(f"url: names one file (no trailing '/') but the inputs hold {len(files)} files")
    headers = check_headers(payload.get("headers"))
    auth = await get_auth(payload)
    state = dict(ctx.resume_data or {})
    done: set[str] = set(state.get("done", []))
    total = sum(f.size for f in files)
    meter = AsyncMeter(ctx, total, sum(f.size for f in files if _done_mark(f) in done))
    if done:
        ctx.log(f"resuming: {len(done)} of {len(files)} files were sent before")
    sent: list[dict[str, Any]] = []
    known: set[str] = set()
    since_files, since_bytes = 0, 0
    async with client_for(auth, follow_redirects=False) as client:
        for f in files:
            if _done_mark(f) in done:
                continue
            await ctx.yield_point()
            target = file_url(url, f)
            meter.message = f"sending {f.rel}"
            if payload.get("webdav"):
                for folder in folder_urls(url, f):
                    await _mkcol(ctx, client, folder, known)
            response = await _send_file(ctx, client, payload, f, target, headers, meter)
            meter.report()
            entry: dict[str, Any] = {
                "url": redact_url(target),
                "status": response.status_code,
                "size": f.size,
            }
            if response.headers.get("ETag"):
                entry["etag"] = response.headers["ETag"]
            sent.append(entry)
            done.add(_done_mark(f))
            since_files, since_bytes = since_files + 1, since_bytes + f.size
            if since_files >= CHECKPOINT_FILES or since_bytes >= CHECKPOINT_BYTES:
                await ctx.checkpoint({"done": sorted(done)})
                since_files, since_bytes = 0, 0
    shown = redact_url(url)
    ctx.log(f"sent {len(files)} file{'s' if len(files) != 1 else ''} ({format_bytes(total)}) to {shown}")
    return {"url": shown, "files": len(files), "bytes": total, "sent": sent[:MAX_LISTED]}


def register(engine: Engine, **hooks: Any) -> None:
    """`hooks`: the submit-time validate and defaults of the kind (see core.jobs.net)."""
    engine.register(
        KIND,
        upload,
        retry=RETRY,
        schema=SCHEMA,
        description="Upload files and folders by HTTP PUT, multipart POST or WebDAV (MKCOL of new folders)",
        **hooks,
    )
