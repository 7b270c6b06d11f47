"""A fault-injecting HTTP/1.1 reverse proxy for tests: it sits on 127.0.0.1 in front of a
test server and can throttle (bytes/s), answer an error status for the next N requests,
drop connections (the next N requests, or everything for T seconds), cut responses short,
and stall requests until released. It counts what passed, so tests assert on the bytes
and requests that reached the server, never on timing.

It runs its own asyncio loop in a daemon thread; every control method is thread-safe and
may be called from a test's loop or from plain code.

    proxy = FaultProxy(upstream_port).start()
    proxy.fail(2, status=500, match="partNumber")   # the next two part uploads get a 500
    proxy.stall(match="partNumber=3")                # hold part 3 until release()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
_ERROR_BODY = (
    b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>injected by FaultProxy</Message></Error>"
)

Match = str | Callable[[str, str], bool] | None


def _matches(match: Match, method: str, target: str) -> bool:
    if match is None:
        return True
    if callable(match):
        return match(method, target)
    return match in f"{method} {target}"


@dataclass
class Record:
    """One request the proxy saw: what happened to it and how many body bytes it relayed."""

    method: str
    target: str
    fate: str  # "forwarded", "failed", "dropped", "cut", "stalled-dropped", "aborted"
    status: int | None = None
    sent: int = 0  # request body bytes relayed to the server
    received: int = 0  # response body bytes relayed to the client


@dataclass
class _Rule:
    kind: str  # fail | drop | cut | stall
    count: int | None  # None: until removed
    match: Match
    status: int = 500
    after: int = 0


@dataclass
class _Bucket:
    rate: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    async def take(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.rate * 0.1, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= min(n, self.rate * 0.1):
                self.tokens -= n
                return
            await asyncio.sleep(max(0.001, (min(n, self.rate * 0.1) - self.tokens) / self.rate))


class FaultProxy:
    """See the module docstring."""

    def __init__(self, upstream_port: int, upstream_host: str = HOST, rcvbuf: int | None = None) -> None:
        """`rcvbuf`: the receive buffer of the client connections, in bytes. Small, it keeps
        a throttled proxy from soaking up megabytes at once, as a slow link would."""
        self.upstream = (upstream_host, upstream_port)
        self.rcvbuf = rcvbuf
        self.records: list[Record] = []
        self.bytes_up = 0  # request body bytes that reached the server
        self.bytes_down = 0
        self._rules: list[_Rule] = []
        self._bucket: _Bucket | None = None
        self._down_until = 0.0
        self._release = threading.Event()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._upstreams: set[asyncio.StreamWriter] = set()
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if self.rcvbuf:  # set before listen: accepted sockets inherit it (and its window)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.bind((HOST, 0))
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, sock=sock))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fault proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        self._release.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        """Close the listener and every connection, and let their transports finish."""
        assert self._server is not None
        self._server.close()
        self._abort_all()  # each connection's task ends on its own (a reset), none is cancelled
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for t in stuck:
                t.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await self._server.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0)  # connection_lost callbacks of the aborted transports

    # -- faults -----------------------------------------------------------------------

    def throttle(self, bps: float | None) -> None:
        """Relay at most `bps` bytes per second in each direction (None: full speed)."""
        self._bucket = _Bucket(bps) if bps else None

    def fail(self, n: int | None, status: int = 500, match: Match = None) -> None:
        """Answer the next `n` matching requests with `status` without forwarding them."""
        self._add(_Rule("fail", n, match, status=status))

    def drop(self, n: int | None = 1, match: Match = None) -> None:
        """Close the connection of the next `n` matching requests before forwarding them."""
        self._add(_Rule("drop", n, match))

    def down(self, seconds: float) -> None:
        """Drop every connection for `seconds` (open ones at once, new ones on arrival)."""
        self._down_until = time.monotonic() + seconds
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._abort_all)

    def cut(self, n: int | None, after: int, match: Match = None) -> None:
        """Close the next `n` matching responses after `after` body bytes."""
        self._add(_Rule("cut", n, match, after=after))

    def stall(self, match: Match = None, n: int | None = None) -> None:
        """Hold matching requests (before their body is read) until `release()`; then
        they are dropped. Holding the body makes the client's send block, as on a dead link."""
        self._release.clear()
        self._add(_Rule("stall", n, match))

    def release(self) -> None:
        """End stalls: held requests are dropped, new ones pass."""
        with self._cond:
            self._rules = [r for r in self._rules if r.kind != "stall"]
        self._release.set()

    def clear(self) -> None:
        """Remove every fault (a stall is released)."""
        with self._cond:
            self._rules.clear()
        self._bucket = None
        self._down_until = 0.0
        self._release.set()

    def _add(self, rule: _Rule) -> None:
        with self._cond:
            self._rules.append(rule)

    def _take_rule(self, method: str, target: str) -> _Rule | None:
        with self._cond:
            for rule in self._rules:
                if _matches(rule.match, method, target):
                    if rule.count is not None:
                        rule.count -= 1
                        if rule.count <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    # -- what passed --------------------------------------------------------------------

    def seen(self, fate: str | None = None, match: Match = None) -> list[Record]:
        with self._cond:
            return [
                r
                for r in self.records
                if (fate is None or r.fate == fate) and _matches(match, r.method, r.target)
            ]

    def wait_for(self, predicate: Callable[[FaultProxy], bool], timeout: float = 20.0) -> None:
        """Block until `predicate(self)` holds (checked whenever a request changes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"proxy condition not reached within {timeout} s: {self.records[-5:]}"
                    )
                self._cond.wait(min(left, 0.05))

    async def wait_for_async(self, predicate: Callable[[FaultProxy], bool], timeout: float = 20.0) -> None:
        await asyncio.to_thread(self.wait_for, predicate, timeout)

    def _note(self, record: Record) -> None:
        with self._cond:
            if record not in self.records:
                self.records.append(record)
            self._cond.notify_all()

    # -- serving ------------------------------------------------------------------------

    def _abort_all(self) -> None:
        for w in list(self._writers) + list(self._upstreams):
            w.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Relay one request and its response; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
        names = {k.strip().lower(): v.strip() for k, v in headers}
        record = Record(method, target, "forwarded")
        if time.monotonic() < self._down_until:
            record.fate = "dropped"
            self._note(record)
            return False
        rule = self._take_rule(method, target)
        expect = names.get("expect", "").lower() == "100-continue"
        if rule is not None and rule.kind == "drop":
            record.fate = "dropped"
            self._note(record)
            return False
        if rule is not None and rule.kind == "stall":
            record.fate = "stalled"
            self._note(record)
            while not self._release.is_set():
                await asyncio.sleep(0.01)
            record.fate = "stalled-dropped"
            self._note(record)
            return False
        if rule is not None and rule.kind == "fail":
            record.fate, record.status = "failed", rule.status
            if not expect:
                await self._drain_body(reader, names)
            phrase = {500: "Internal Server Error", 503: "Service Unavailable", 403: "Forbidden",
                      404: "Not Found"}.get(rule.status, "Error")  # fmt: skip
            writer.write(
                f"HTTP/1.1 {rule.status} {phrase}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(_ERROR_BODY)}\r\nConnection: close\r\n\r\n".encode()
                + _ERROR_BODY
            )
            await writer.drain()
            self._note(record)
            return False
        if expect:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._upstreams.add(up_writer)
        try:
            out = [lines[0]] + [
                f"{k}:{v}" for k, v in headers if k.strip().lower() not in ("expect", "connection")
            ]
            out.append("Connection: close")
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            self._note(record)
            try:
                await self._relay_body(reader, up_writer, names, record, upstream=True)
            except (ConnectionError, asyncio.IncompleteReadError):
                record.fate = "aborted"
                self._note(record)
                return False
            await up_writer.drain()
            keep = await self._relay_response(up_reader, writer, method, record, rule)
        finally:
            self._upstreams.discard(up_writer)
            up_writer.transport.abort()
        self._note(record)
        return keep and names.get("connection", "").lower() != "close"

    async def _drain_body(self, reader: asyncio.StreamReader, names: dict[str, str]) -> None:
        length = int(names.get("content-length", 0) or 0)
        while length > 0:
            chunk = await reader.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    async def _pace(self, n: int) -> None:
        bucket = self._bucket
        if bucket is not None:
            await bucket.take(n)

    async def _relay_body(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        names: dict[str, str],
        record: Record,
        *,
        upstream: bool,
    ) -> None:
        if "chunked" in names.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                writer.write(size_line)
                data = await reader.readexactly(size + 2) if size else b""
                await self._pace(len(data))
                writer.write(data)
                self._count(record, size, upstream)
                if size == 0:
                    while True:  # trailers, then the empty line
                        line = await reader.readuntil(b"\r\n")
                        writer.write(line)
                        if line == b"\r\n":
                            break
                    break
                await writer.drain()
            return
        length = int(names.get("content-length", 0) or 0)
        while length > 0:
            chunk = await reader.read(min(length, 65536))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", length)
            await self._pace(len(chunk))
            writer.write(chunk)
            await writer.drain()
            length -= len(chunk)
            self._count(record, len(chunk), upstream)

    def _count(self, record: Record, n: int, upstream: bool) -> None:
        if upstream:
            record.sent += n
            self.bytes_up += n
        else:
            record.received += n
            self.bytes_down += n

    async def _relay_response(
        self,
        up: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        record: Record,
        rule: _Rule | None,
    ) -> bool:
        while True:
            head = await up.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status >= 200:
                break
            writer.write(head)  # an interim response (100 Continue from the server)
        record.status = status
        lines = head.decode("latin-1").split("\r\n")
        names = {
            k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
        }
        no_body = method == "HEAD" or status in (204, 304)
        framed = no_body or "content-length" in names or "chunked" in names.get("transfer-encoding", "")
        kept = [line for line in lines[1:] if line and not line.lower().startswith("connection:")]
        if not framed:
            kept.append("Connection: close")
        writer.write(("\r\n".join([lines[0], *kept]) + "\r\n\r\n").encode("latin-1"))
        if no_body:
            await writer.drain()
            return True
        if rule is not None and rule.kind == "cut":
            left = rule.after
            while left > 0:
                chunk = await up.read(min(left, 65536))
                if not chunk:
                    break
                writer.write(chunk)
                left -= len(chunk)
                self._count(record, len(chunk), False)
            await writer.drain()
            record.fate = "cut"
            return False
        if framed:
            await self._relay_body(up, writer, names, record, upstream=False)
            await writer.drain()
            return True
        while chunk := await up.read(65536):
            await self._pace(len(chunk))
            writer.write(chunk)
            self._count(record, len(chunk), False)
        await writer.drain()
        return False


@contextlib.contextmanager
def running(upstream_port: int) -> Any:
    proxy = FaultProxy(upstream_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
