"""boto3 for upload.s3: one shared client per endpoint and credentials, file slices as
request bodies that go through the bandwidth limits, and boto3's errors turned into
retryable failures or `Permanent` ones.

Why boto3 and not aiobotocore: boto3 is the reference client every S3-compatible server
is tested against, it is what the benchmark's peer (upload_file / s3transfer) uses, and its
blocking calls run in the engine's task threads (run_in="thread"), where a part is one
blocking request anyway. aiobotocore would put the HTTP on the loop, but it pins botocore
to exact versions (resolver conflicts with boto3) and adds aiohttp; parallelism here comes
from the engine running parts as tasks, not from the loop.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core import Permanent
from core.jobs.net import credentials as creds
from core.jobs.net.common import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    SyncCtx,
    SyncMeter,
    TransferError,
    attempt_text,
    redact_text,
)

MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
MULTI_ETAG = re.compile(r"^[0-9a-f]{32}-\d+$")


# -- the target -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    endpoint_url: str | None
    region: str | None
    bucket: str
    credentials: str | None

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Target:
        return cls(
            endpoint_url=payload.get("endpoint_url"),
            region=payload.get("region"),
            bucket=payload["bucket"],
            credentials=payload.get("credentials"),
        )

    @property
    def where(self) -> str:
        return self.endpoint_url or "AWS S3"

    def fields(self) -> dict[str, Any]:
        """The target as child payload fields."""
        out: dict[str, Any] = {"bucket": self.bucket}
        for name in ("endpoint_url", "region", "credentials"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


# -- clients ----------------------------------------------------------------------------

_clients: dict[tuple[str | None, ...], Any] = {}
_clients_lock = threading.Lock()
_MAX_CLIENTS = 32


def client_for(target: Target) -> Any:
    """A boto3 S3 client for the target, shared by the tasks that use the same endpoint and
    credentials (clients are thread-safe; making one costs tens of ms). Blocking."""
    secret = creds.for_s3(target.credentials)
    fingerprint = None
    if secret is not None:
        # in memory only: tells credentials apart without keeping them as the key
        fingerprint = hashlib.sha256(
            "\0".join((secret.access_key_id, secret.secret_access_key, secret.session_token or "")).encode()
        ).hexdigest()
    # the checksum setting is read from the environment when a client is made
    key = (
        target.endpoint_url,
        target.region,
        fingerprint,
        os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION"),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]

            config = Config(
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                # the engine retries, with backoff the window shows; botocore would re-send
                # a part's bytes out of sight of the progress bar and the request counts
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=64,
                s3={"addressing_style": "path" if target.endpoint_url else "auto"},
                user_agent_extra="taskdeck",
            )
            session = boto3.session.Session()
            client = session.client(
                "s3",
                endpoint_url=target.endpoint_url,
                region_name=target.region or ("us-east-1" if target.endpoint_url else None),
                aws_access_key_id=secret.access_key_id if secret else None,
                aws_secret_access_key=secret.secret_access_key if secret else None,
                aws_session_token=secret.session_token if secret else None,
                config=config,
            )
            client.meta.events.register("before-send.s3", _mark_sending)
            if len(_clients) >= _MAX_CLIENTS:
                _clients.clear()
            _clients[key] = client
    return client


def _mark_sending(request: Any, **_: Any) -> None:
    """botocore reads a body to checksum and sign it before it sends it: only the reads
    after this point are bytes on the wire (metered, throttled, hashed)."""
    body = getattr(request, "body", None)
    body = getattr(body, "_raw", body)  # an aws-chunked wrapper (https) holds ours
    if isinstance(body, FileSlice):
        sent = request.headers.get("x-amz-checksum-crc32")
        body.sent_crc32 = sent.decode() if isinstance(sent, bytes) else sent
        body.start_sending()


# -- bodies -----------------------------------------------------------------------------


_PREAD = getattr(os, "pread", None)  # POSIX; Windows seeks and reads


class FileSlice:
    """`length` bytes of a file from `offset`, as a seekable body for boto3. The pass that
    goes on the wire draws from the bandwidth budget, reports progress, stops at a pause or
    cancel (Interrupted out of the read), and (with md5) computes the MD5 the ETag is
    checked against."""

    def __init__(self, path: str, offset: int, length: int, meter: SyncMeter, *, md5: bool = True) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._hash = md5
        self.sent_crc32: str | None = None  # the checksum botocore put in the request
        self._offset = offset
        self._length = length
        self._pos = 0
        self._meter = meter
        self._base = meter.done
        self._sending = False
        self.md5 = hashlib.md5(usedforsecurity=False)

    def start_sending(self) -> None:
        self._sending = True
        self.seek(0)

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        if self._sending:
            self._meter.take(n)
        data: bytes
        if _PREAD is not None:  # one system call, no shared file position
            data = _PREAD(self._file.fileno(), n, self._offset + self._pos)
        else:
            self._file.seek(self._offset + self._pos)
            data = self._file.read(n) or b""
        self._pos += len(data)
        if self._sending:
            if self._hash:
                self.md5.update(data)
            self._meter.moved(len(data))
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._length
        self._pos = max(0, min(self._length, pos))
        if self._sending and self._pos == 0:  # re-sent from the start
            self.md5 = hashlib.md5(usedforsecurity=False)
            self._meter.restart(self._base)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._length

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FileSlice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- failures ---------------------------------------------------------------------------

_RETRY_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "RequestTimeTooSkewed",
    }
)
_AUTH_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"}
)


def _one_line(text: object) -> str:
    """A server's or library's text, as one line of a task's error (no URL secrets)."""
    return redact_text(" ".join(str(text).split()))


def failure(ctx: Any, e: BaseException, target: Target, what: str) -> BaseException:
    """The exception to raise for a boto3 error: Permanent when trying again cannot help.
    A Permanent one names the bucket and the endpoint, on one line."""
    bx = botocore_exceptions()
    where = target.where
    bucket = f"bucket {target.bucket!r} at {where}"
    if isinstance(e, creds.CredentialsError):
        return Permanent(str(e))
    if isinstance(e, bx.ClientError):
        err = e.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = _one_line(err.get("Message", "")) or code
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "NoSuchBucket":
            return Permanent(f"bucket {target.bucket!r} does not exist at {where} (S3 NoSuchBucket)")
        if code in _AUTH_CODES:
            return Permanent(
                f"{bucket} refused {what} (S3 {code}: {message}); check the keyring entry or "
                "environment named by `credentials`, and what they may do in the bucket"
            )
        if code == "NoSuchUpload":
            return Permanent(
                f"{what}: the multipart upload no longer exists in {bucket} (aborted or expired)"
            )
        if code in _RETRY_CODES or status >= 500 or status in (408, 429) or not status:
            return TransferError(f"S3 {code or status}: {message} ({what} at {where}) — {attempt_text(ctx)}")
        return Permanent(f"S3 {code or status}: {message} ({what} in {bucket})")
    if isinstance(e, bx.NoCredentialsError | bx.PartialCredentialsError):
        return Permanent(
            f"no S3 credentials for {where}: name a keyring entry in `credentials`, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(e, bx.ParamValidationError | bx.NoRegionError | bx.InvalidEndpointConfigurationError):
        return Permanent(f"{what}: {_one_line(e)}")
    if isinstance(e, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return TransferError(f"cannot connect to {where} for {what} — {attempt_text(ctx)}")
    if isinstance(e, bx.ReadTimeoutError):
        return TransferError(
            f"{where} did not answer within {READ_TIMEOUT:g} s ({what}) — {attempt_text(ctx)}"
        )
    if isinstance(e, bx.BotoCoreError | OSError):
        return TransferError(
            f"connection to {where} failed during {what}: {_one_line(e)} — {attempt_text(ctx)}"
        )
    return e


def botocore_exceptions() -> Any:
    """botocore.exceptions, imported when first needed (importing boto3 takes ~0.2 s, and
    every `taskdeck` command imports the built-in kinds)."""
    from botocore import exceptions  # type: ignore[import-untyped]

    return exceptions


def call(ctx: Any, target: Target, what: str, fn: Callable[[], Any]) -> Any:
    from core import Interrupted

    try:
        return fn()
    except (Interrupted, Permanent):
        raise
    except Exception as e:
        mapped = failure(ctx, e, target, what)
        if mapped is e:
            raise
        raise mapped from e


def etag_of(value: str | None) -> str:
    return (value or "").strip().strip('"')


def _check_etag(etag: str, md5_hex: str, what: str) -> None:
    """A plain object's ETag is the MD5 of its bytes (unless the server encrypts with KMS,
    where it is something else and cannot be checked)."""
    if MD5_ETAG.match(etag) and etag != md5_hex:
        raise TransferError(f"{what}: the server stored different bytes (ETag {etag}, sent MD5 {md5_hex})")


def multipart_etag(md5s: Sequence[str]) -> str:
    """S3's ETag of a multipart object: the MD5 of the parts' MD5s (their ETags), then
    "-<parts>"."""
    joined = b"".join(bytes.fromhex(m) for m in md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5s)}"


# -- sending ----------------------------------------------------------------------------


def checksum_args(client: Any) -> dict[str, str]:
    """What boto3's own transfers add (s3transfer): CRC32 checksums of every request, which
    the server checks, unless the client is set to send them only when required
    (AWS_REQUEST_CHECKSUM_CALCULATION=when_required, for servers that refuse them). Also
    cheaper for moto and S3 to complete: the parts' checksums are combined, not recomputed."""
    when = getattr(client.meta.config, "request_checksum_calculation", None)
    return {"ChecksumAlgorithm": "CRC32"} if when == "when_supported" else {}


@dataclass(frozen=True, slots=True)
class Sent:
    etag: str  # what the server says it stored (for a plain object: the MD5 of the bytes)
    crc32: str | None  # its CRC32 checksum, when checksums are on


def send_slice(
    ctx: SyncCtx,
    client: Any,
    target: Target,
    *,
    path: str,
    key: str,
    offset: int,
    size: int,
    label: str,
    upload_id: str | None = None,
    part: int | None = None,
    content_type: str | None = None,
) -> Sent:
    """PutObject (or UploadPart) of one slice, checked: by the CRC32 the server echoes (it
    must equal the one botocore computed and sent, and the server checked the bytes against
    it), else by the MD5 of what was sent, which a plain ETag must equal."""
    meter = SyncMeter(ctx, total=size, message=label)
    extra = checksum_args(client)
    with FileSlice(path, offset, size, meter, md5=not extra) as body:
        kwargs: dict[str, Any] = dict(extra)
        if upload_id is not None:
            what = f"part {part} of {key}"
            kwargs.update(UploadId=upload_id, PartNumber=part)
            method = client.upload_part
        else:
            what = f"upload of {key}"
            if content_type:
                kwargs["ContentType"] = content_type
            method = client.put_object
        if size == 0:
            body.start_sending()
        response = call(
            ctx,
            target,
            what,
            functools.partial(method, Bucket=target.bucket, Key=key, Body=body, ContentLength=size, **kwargs),
        )
        sent_crc32 = body.sent_crc32
        md5_hex = body.md5.hexdigest() if not extra else None
    meter.report()
    etag = etag_of(response.get("ETag"))
    crc32 = response.get("ChecksumCRC32")
    if extra and crc32 and sent_crc32:
        if crc32 != sent_crc32:
            raise TransferError(f"{what}: the server stored other bytes (CRC32 {crc32}, sent {sent_crc32})")
    else:  # no checksum came back: check the ETag against the bytes (read again if need be)
        _check_etag(etag, md5_hex or file_md5(path, offset, size), what)
    return Sent(etag=etag, crc32=crc32)


def file_md5(path: str, offset: int, size: int) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = size
        while left > 0:
            chunk = fh.read(min(left, 1024 * 1024))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def connect(ctx: Any, target: Target) -> Any:
    return call(ctx, target, "connecting", lambda: client_for(target))


# A cleanup's abort is tried again on a failure that may pass (a 503, a reset): an upload
# it leaves behind keeps its parts, billed, until a lifecycle rule or a person removes it.
ABORT_TRIES = 3
ABORT_BACKOFF = 1.0  # seconds before the second try, doubled before each further one


@dataclass(frozen=True)
class _AbortTry:  # what attempt_text reads: "attempt 2 of 3"
    attempt: int
    tries: int

    @property
    def max_retries(self) -> int:
        return self.tries - 1


def abort_all(
    target: Target, uploads: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep
) -> tuple[int, list[tuple[str, str]]]:
    """Abort each upload (id -> key); one completed or aborted already is no error. A
    failure that may pass is tried again, up to ABORT_TRIES in all. Returns how many were
    aborted and, for each that could not be, (key, why): one failure does not keep the
    others from being aborted. Runs on a thread (it blocks, and sleeps between tries)."""
    ClientError = botocore_exceptions().ClientError
    try:
        client = client_for(target)
    except Exception as e:
        why = str(failure(_AbortTry(1, 1), e, target, "aborting"))
        return 0, [(key, why) for key in uploads.values()]
    aborted, failed = 0, []
    for upload_id, key in uploads.items():
        for n in range(1, ABORT_TRIES + 1):
            try:
                client.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id)
                aborted += 1
                break
            except Exception as e:
                if isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    break
                err = failure(_AbortTry(n, ABORT_TRIES), e, target, f"aborting the upload of {key}")
                if isinstance(err, Permanent) or n == ABORT_TRIES:
                    failed.append((key, str(err)))
                    break
                sleep(ABORT_BACKOFF * 2 ** (n - 1))
    return aborted, failed
