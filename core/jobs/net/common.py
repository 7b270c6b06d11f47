"""What the network kinds share: payload schema pieces, the files an upload sends, the
defaults a submission gets (group = endpoint host, dedup key = source + destination), how
failures are classified (retry or `Permanent`), and a meter that moves bytes through the
bandwidth limits while it reports progress."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from core import Permanent, RetryPolicy
from core.jobs.common import PlainContext

# -- defaults ---------------------------------------------------------------------------

# A dropped connection or a 5xx is worth a few tries a while apart: the row reads
# "retrying in 8 s (attempt 3 of 5)" meanwhile (ux Q-14).
RETRY = RetryPolicy.exponential(max_retries=4, base=2.0, factor=2.0, cap=60.0, jitter=0.1)
CHUNK = 256 * 1024  # bytes drawn from the bandwidth budget (and reported) at a time
REPORT_BYTES = CHUNK
DRAW_MIN = 64 * 1024  # a thread's draws from the bandwidth budget: see SyncMeter
DRAW_MAX = 4 * 1024 * 1024
QUICK_DRAW = 0.02  # seconds: a draw granted within this left room for a bigger one
REPORT_SECONDS = 0.1  # a thread's progress reports, at most this often
CONNECT_TIMEOUT = 10.0  # seconds
READ_TIMEOUT = 60.0  # seconds without a byte from the server: a stalled transfer is retried

# -- payload schema pieces ----------------------------------------------------------------

# Scheme checked case-insensitively, without relying on regex flags (JSON Schema patterns
# are ECMA-262); no user:password@ in the authority: secrets never sit in a payload.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s@]+([/?#]\S*)?$"
_SECRET_HEADERS = (
    "[Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn]",
    "[Pp][Rr][Oo][Xx][Yy]-[Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn]",
    "[Cc][Oo][Oo][Kk][Ii][Ee]",
)
SECRET_HEADER_NAMES = ("authorization", "proxy-authorization", "cookie")
# jsonschema's message for a refused header reads "'Cookie' should not be valid under
# {'$ref': '#/$defs/<this name>'}": the name is the explanation (so for URLs and paths).
SECRET_HEADER_DEF = "Authorization_and_Cookie_headers_are_refused__name_a_keyring_entry_in_credentials"


BAD_URL_DEF = "not_an_http_or_https_URL__or_one_with_a_user_and_password"
BAD_HEADER_VALUE_DEF = "a_header_value_holds_only_printable_ASCII__no_line_break"


def url_schema(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "maxLength": 8192,
        "not": {"$ref": f"#/$defs/{BAD_URL_DEF}"},
        "description": description,
    }


# What may not go in a header value, searched for (a "^…*$" pattern would let a trailing
# line break through: Python's $ matches before one).
NOT_IN_HEADER_VALUE = "[^\\t\\x20-\\x7e]"


def headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "maxProperties": 64,
        "propertyNames": {
            "pattern": r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$",
            "not": {"$ref": f"#/$defs/{SECRET_HEADER_DEF}"},
        },
        # printable ASCII: a line break would end the header and start another (h11 refuses
        # it at send time, which read as a dropped connection), and httpx cannot encode
        # anything past ASCII (UnicodeEncodeError, retried five times)
        "additionalProperties": {
            "type": "string",
            "maxLength": 8192,
            "not": {"$ref": f"#/$defs/{BAD_HEADER_VALUE_DEF}"},
        },
        "description": "extra request headers (never Authorization or Cookie: use credentials)",
    }


# A relative path would be resolved against whichever process runs the task: refused.
ABSOLUTE_PATH_DEF = "a_relative_path__give_an_absolute_one"
ABSOLUTE_PATH: dict[str, Any] = {"not": {"$ref": f"#/$defs/{ABSOLUTE_PATH_DEF}"}}


def schema_defs() -> dict[str, Any]:
    """The `$defs` the pieces here refer to (each kind's schema carries them)."""
    return {
        ABSOLUTE_PATH_DEF: {"pattern": r"^(?![/~]|[A-Za-z]:[\\/]|\\\\)"},
        SECRET_HEADER_DEF: {"pattern": "^(" + "|".join(_SECRET_HEADERS) + ")$"},
        BAD_URL_DEF: {"not": {"pattern": URL_PATTERN}},
        BAD_HEADER_VALUE_DEF: {"pattern": NOT_IN_HEADER_VALUE},
    }


CREDENTIALS_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "description": "a keyring entry name, or 'env' for the standard environment variables",
}
BANDWIDTH_SCHEMA: dict[str, Any] = {
    "type": "number",
    "exclusiveMinimum": 0,
    "description": "this task's own limit in bytes/s (the global limits apply as well)",
}
INPUTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 10000,
    "items": {"type": "string", "minLength": 1, "maxLength": 4096, **ABSOLUTE_PATH},
    "description": "files and folders to send, absolute paths (a folder goes with its name)",
}

# -- secrets in URLs ----------------------------------------------------------------------

# Query parameters that carry a credential: presigned S3 (X-Amz-Signature, X-Amz-Credential,
# X-Amz-Security-Token) and GCS URLs, Azure SAS (sig), OAuth tokens and API keys.
_SECRET_PARAM = re.compile(
    r"(?i)^(x-amz-|x-goog-|sig$|signature|.*token|.*secret|.*passw|pwd$|.*key|.*credential|.*auth|code$|session)"
)
_URL_IN_TEXT = re.compile(r"\b[Hh][Tt][Tt][Pp][Ss]?://[^\s\"'<>]*[^\s\"'<>.,;:)]")


def redact_url(url: str) -> str:
    """`url` as it may be shown, logged or kept in a result: the value of each query
    parameter that looks like a credential (a presigned URL's signature, a token) masked,
    no user:password, no fragment. The payload keeps the URL itself: it is needed to send."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=***" if sep and _SECRET_PARAM.match(name) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&") if parts.query)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """`text` with every http(s) URL in it passed through redact_url (for messages built
    from a library's exception, which may quote the URL it was asked for)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


# -- files ------------------------------------------------------------------------------


# On POSIX a file name is bytes; Python shows the bytes that are not UTF-8 (a legacy
# Latin-1 name, b"caf\xe9.jpg") as lone surrogates ("caf\udce9.jpg"), which open() takes
# back but no UTF-8 text can hold: not a JSON payload in SQLite, not a URL, not an S3 key.


def is_text(name: str) -> bool:
    """Whether `name` holds no undecodable bytes (it encodes to UTF-8)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display(path: str) -> str:
    """`path` for a message or log line: undecodable bytes shown as \\xNN."""
    return path if is_text(path) else os.fsencode(path).decode("utf-8", "backslashreplace")


def remote_name(name: str) -> str:
    """A local file name as it goes to the server: itself, or when its bytes are not UTF-8,
    those bytes read as Latin-1 (b"caf\xe9.jpg" -> "café.jpg"): every byte one character,
    so two names never become one."""
    return name if is_text(name) else os.fsencode(name).decode("latin-1")


_FS_HEX = "fs-hex:"  # not an absolute path, so no real path reads like one


def path_field(path: str) -> str:
    """`path` as a payload field (JSON text): itself, or its bytes in hex when they are not
    UTF-8. `local_path` turns it back."""
    return path if is_text(path) else _FS_HEX + os.fsencode(path).hex()


def local_path(field: str) -> str:
    """The path a `path_field` value names."""
    if field.startswith(_FS_HEX):
        return os.fsdecode(bytes.fromhex(field[len(_FS_HEX) :]))
    return field


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: str  # absolute
    rel: str  # its name under the destination, "/"-separated (a folder's name comes first)
    size: int
    mtime_ns: int


def collect_files(inputs: Sequence[str], field: str = "inputs") -> list[LocalFile]:
    """The files that `inputs` (files and folders) name, folders walked in name order.
    Raises Permanent naming the input that does not exist or cannot be read, or two files
    that would go to the same name. Blocking."""
    out: list[LocalFile] = []
    seen: set[str] = set()
    names: dict[str, str] = {}  # rel -> path: two files never land on one name
    for i, raw in enumerate(inputs):
        path = Path(raw).expanduser()
        try:
            st = path.stat()
        except OSError as e:
            raise Permanent(f"{field}[{i}]: {display(raw)} {_os_reason(e)}") from e
        if stat.S_ISDIR(st.st_mode):
            base = path.resolve()
            for root, dirs, files in os.walk(base, onerror=None):
                dirs.sort()
                for name in sorted(files):
                    full = Path(root, name)
                    try:
                        fst = full.stat()
                    except OSError:
                        continue  # vanished or a dangling link: nothing to send
                    if not stat.S_ISREG(fst.st_mode):
                        continue
                    rel = "/".join(remote_name(p) for p in (base.name, *full.relative_to(base).parts))
                    _add(out, seen, names, LocalFile(str(full), rel, fst.st_size, fst.st_mtime_ns), field)
        elif stat.S_ISREG(st.st_mode):
            f = LocalFile(str(path.resolve()), remote_name(path.name), st.st_size, st.st_mtime_ns)
            _add(out, seen, names, f, field)
        else:
            raise Permanent(f"{field}[{i}]: {display(raw)} is neither a file nor a folder")
        if not os.access(path, os.R_OK):
            raise Permanent(f"{field}[{i}]: {display(raw)} cannot be read (permission denied)")
    if not out:
        raise Permanent(f"{field}: the folders hold no file to send")
    return out


def _add(out: list[LocalFile], seen: set[str], names: dict[str, str], f: LocalFile, field: str) -> None:
    if f.path in seen:
        return
    other = names.get(f.rel)
    if other is not None:
        raise Permanent(
            f"{field}: {display(other)} and {display(f.path)} would both be sent as {f.rel}; "
            "rename one, or send them separately"
        )
    seen.add(f.path)
    names[f.rel] = f.path
    out.append(f)


def _os_reason(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "does not exist"
    if isinstance(e, PermissionError):
        return "cannot be read (permission denied)"
    return f"cannot be read ({e.strerror or e})"


def check_unchanged(path: str, size: int, mtime_ns: int, *, sent: bool = False) -> None:
    """Raise Permanent when the file changed since the upload was planned (`sent`: checked
    again after its bytes went, so a write during the send is caught too)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise Permanent(f"{display(path)} {_os_reason(e)}") from e
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        when = "while it was being sent" if sent else "since the upload started"
        raise Permanent(f"{display(path)} changed {when} (size or modification time differ)")


# -- submission defaults ----------------------------------------------------------------


def host_of(url: str) -> str:
    """The host (and port) of a URL, lower-cased: one group per server."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def dedup_key(kind: str, source: object, destination: object) -> str:
    """A dedup key for source + destination: the same drop twice queues one task."""
    text = json.dumps([source, destination], sort_keys=True, separators=(",", ":"))
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def absolute_inputs(inputs: Iterable[str]) -> list[str]:
    return [str(Path(p).expanduser().resolve()) for p in inputs]


# -- failures ---------------------------------------------------------------------------


class TransferError(Exception):
    """A retryable network failure (a timeout, a reset, a 5xx): the engine tries again.
    The engine shows it as "TransferError: <message>" (it prefixes the class name of any
    error but Permanent), so the name is chosen to read well there."""


RETRYABLE_STATUS = frozenset({408, 425, 429})


def status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def attempt_text(ctx: Any) -> str:
    return f"attempt {ctx.attempt} of {ctx.max_retries + 1}"


def http_failure(ctx: Any, status: int, what: str, detail: str = "") -> Exception:
    """The exception for an unwanted HTTP status: Permanent for a 4xx (but 408, 425 and
    429), retryable for a 5xx. The message reads "HTTP 500 Internal Server Error from PUT
    http://… — attempt 3 of 5"."""
    message = f"{status_text(status)} from {what}" + (f": {detail}" if detail else "")
    if status >= 500 or status in RETRYABLE_STATUS:
        return TransferError(f"{message} — {attempt_text(ctx)}")
    return Permanent(message)


# -- moving bytes -----------------------------------------------------------------------


class SyncCtx(PlainContext, Protocol):
    """What the thread handlers use of SyncTaskContext: the plain ctx, and the bandwidth."""

    def throttle(self, nbytes: int) -> None: ...


HINT_SECONDS = 1.0
_draw_hint = (CHUNK, 0.0)  # where a new SyncMeter's draws start, and when it was learned


class SyncMeter:
    """Bytes a thread handler is about to move: drawn from the bandwidth budget before they
    go, reported as progress, with a check for interruption before each piece (a pause
    leaves the bytes still).

    A draw is a call into the loop (a round trip that waits for the loop's turn: ~4 ms
    each with ten parts going), so draws are sized to what the limits allow: doubled while
    they are granted at once (up to DRAW_MAX when nothing limits), halved while they wait
    (down to DRAW_MIN, a fine grain under a low limit), never past the bytes left. A new
    meter starts at the size the last one reached within HINT_SECONDS (_draw_hint): each
    part of a multipart upload is a meter of its own, and starting each at CHUNK cost six
    round trips a part. Progress goes to the loop at most every REPORT_SECONDS."""

    __slots__ = ("_credit", "_draw", "_reported", "_reported_at", "ctx", "done", "message", "total")

    def __init__(self, ctx: SyncCtx, total: int, done: int = 0, message: str | None = None) -> None:
        self.ctx = ctx
        self.total = total
        self.done = done
        self.message = message
        self._credit = 0
        size, learned = _draw_hint
        self._draw = size if time.monotonic() - learned < HINT_SECONDS else CHUNK
        self._reported = done
        self._reported_at = 0.0

    def take(self, n: int) -> None:
        """Wait until `n` more bytes may go; raises Interrupted when the task is stopping."""
        global _draw_hint  # a hint: a lost update between threads is harmless
        self.ctx.yield_point()
        if n > self._credit:
            need = max(n - self._credit, min(self._draw, self.total - self.done - self._credit))
            start = time.monotonic()
            self.ctx.throttle(need)
            now = time.monotonic()
            if now - start < QUICK_DRAW:
                self._draw = min(DRAW_MAX, self._draw * 2)
            else:
                self._draw = max(DRAW_MIN, self._draw // 2)
            _draw_hint = (self._draw, now)
            self._credit += need
        self._credit -= n

    def moved(self, n: int) -> None:
        self.done += n
        if self.done >= self.total or time.monotonic() - self._reported_at >= REPORT_SECONDS:
            self.report()

    def report(self) -> None:
        delta, self._reported = self.done - self._reported, self.done
        self._reported_at = time.monotonic()
        if delta > 0:
            self.ctx.record_io(sent=delta)
        self.ctx.progress(done=self.done, total=max(self.total, self.done), message=self.message)

    def restart(self, done: int) -> None:
        """The bytes after `done` will be sent again (a request is re-sent)."""
        self.done = min(self.done, done)
        self._reported = min(self._reported, self.done)


class AsyncMeter:
    """SyncMeter for loop handlers (TaskContext)."""

    __slots__ = ("_credit", "_reported", "ctx", "done", "message", "sent", "total")

    def __init__(self, ctx: Any, total: int | None, done: int = 0, message: str | None = None) -> None:
        self.ctx = ctx
        self.total = total
        self.done = done
        self.message = message
        self.sent = True
        self._credit = 0
        self._reported = done

    async def take(self, n: int) -> None:
        await self.ctx.yield_point()
        if n > self._credit:
            need = max(n - self._credit, CHUNK)
            await self.ctx.throttle(need)
            self._credit += need
        self._credit -= n

    def moved(self, n: int) -> None:
        self.done += n
        if self.done - self._reported >= REPORT_BYTES or (self.total is not None and self.done >= self.total):
            self.report()

    def report(self) -> None:
        delta, self._reported = self.done - self._reported, self.done
        if delta > 0:
            if self.sent:
                self.ctx.record_io(sent=delta)
            else:
                self.ctx.record_io(received=delta)
        total = None if self.total is None else max(self.total, self.done)
        self.ctx.progress(done=self.done, total=total, message=self.message)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - the loop returns


def check_headers(headers: Mapping[str, Any] | None, field: str = "headers") -> dict[str, str]:
    """Headers as given, refusing the ones that carry secrets (the schema does it at submit;
    this guards tasks whose kind had no schema when they were queued)."""
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if name.lower() in SECRET_HEADER_NAMES:
            raise Permanent(f"{field}.{name}: not allowed; name a keyring entry in `credentials` instead")
        if re.search(NOT_IN_HEADER_VALUE, str(value)):
            raise Permanent(f"{field}.{name}: only printable ASCII may go in a header value")
        out[str(name)] = str(value)
    return out
