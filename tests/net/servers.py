"""Real servers on 127.0.0.1 for the network kinds' tests and benchmarks: moto's S3 in
server mode (with a count of the requests that reached it), a small HTTP file server with
Range support, and a WebDAV server (wsgidav). Each runs in a thread of the test process;
`python -m tests.net.servers moto` runs the S3 server in a process of its own (the
benchmarks do, so the client and the server do not share a GIL) and prints its port.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import logging
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

HOST = "127.0.0.1"
COUNTS_PATH = "/_taskdeck/requests"


# -- S3 (moto) --------------------------------------------------------------------------


def s3_operation(method: str, path: str, query: str) -> str:
    """The S3 operation of a request, as far as the tests need to tell them apart."""
    q = parse_qs(query, keep_blank_values=True)
    key = path.strip("/").count("/") >= 1
    if method == "PUT" and "partNumber" in q and "uploadId" in q:
        return "UploadPart"
    if method == "POST" and "uploads" in q:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in q:
        return "CompleteMultipartUpload"
    if method == "DELETE" and "uploadId" in q:
        return "AbortMultipartUpload"
    if method == "GET" and "uploads" in q:
        return "ListMultipartUploads"
    if method == "GET" and "uploadId" in q:
        return "ListParts"
    if method == "PUT":
        return "PutObject" if key else "CreateBucket"
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if method == "GET":
        return "GetObject" if key else "ListObjects"
    if method == "DELETE":
        return "DeleteObject" if key else "DeleteBucket"
    return f"{method} {path}"


class CountingApp:
    """WSGI middleware that records each request the wrapped app answered: (operation,
    part number, status). GET COUNTS_PATH returns them as JSON; DELETE clears them."""

    def __init__(
        self, app: Callable[..., Any], classify: Callable[[str, str, str], str] = s3_operation
    ) -> None:
        self.app = app
        self.classify = classify
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int | None, int]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path == COUNTS_PATH:
            if method == "DELETE":
                self.clear()
            body = json.dumps(self.snapshot()).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        query = environ.get("QUERY_STRING", "")
        status: list[int] = []

        def recording_start(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(int(status_line.split()[0]))
            return start_response(status_line, headers, exc_info)

        result = self.app(environ, recording_start)
        part = parse_qs(query).get("partNumber", [None])[0]
        with self.lock:
            self.seen.append(
                (self.classify(method, path, query), int(part) if part else None, status[0] if status else 0)
            )
        return result  # type: ignore[no-any-return]

    def snapshot(self) -> list[tuple[str, int | None, int]]:
        with self.lock:
            return list(self.seen)

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()


def moto_app() -> CountingApp:
    from moto.server import DomainDispatcherApplication, create_backend_app

    return CountingApp(DomainDispatcherApplication(create_backend_app))


class ThreadServer:
    """A WSGI app served by werkzeug in a daemon thread on 127.0.0.1 (port 0: any free)."""

    def __init__(self, app: Callable[..., Any], port: int = 0) -> None:
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.server = make_server(HOST, port, app, threaded=True)
        self.port = int(self.server.server_address[1])
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name=f"server {self.url}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self._thread.join(timeout=10)
        self.server.server_close()


class MotoServer(ThreadServer):
    """moto's S3 in server mode, in this process, counting the requests it answers."""

    def __init__(self, port: int = 0) -> None:
        self.app = moto_app()
        super().__init__(self.app, port)

    def requests(self, op: str | None = None) -> list[tuple[str, int | None, int]]:
        return [r for r in self.app.snapshot() if op is None or r[0] == op]

    def count(self, op: str) -> int:
        return len(self.requests(op))

    def parts_sent(self) -> Counter[int]:
        """UploadPart requests answered 200, by part number."""
        return Counter(p for o, p, s in self.app.snapshot() if o == "UploadPart" and s == 200 and p)


def remote_counts(url: str) -> list[tuple[str, int | None, int]]:
    """The requests a `python -m tests.net.servers moto` process answered so far."""
    import urllib.request

    with urllib.request.urlopen(url + COUNTS_PATH, timeout=10) as r:
        return [tuple(x) for x in json.loads(r.read())]  # type: ignore[misc]


# -- a file server with Range support ---------------------------------------------------


@dataclass
class Served:
    """One file the HTTP server offers at `path`."""

    data: bytes
    ranges: bool = True  # honour Range (else always send it whole, 200)
    if_range: bool = True  # honour If-Range (else send the range asked even if the file changed)
    etag: str | None = None  # default: a strong ETag from the bytes
    last_modified: str | None = None
    disposition: str | None = None  # Content-Disposition
    cut_after: list[int] = field(default_factory=list)  # close the next responses after N body bytes
    gets: int = 0
    ranges_asked: list[str] = field(default_factory=list)


class FileServer:
    """An HTTP/1.1 server on 127.0.0.1: GET (with Range and If-Range) of `files`, and PUT /
    POST that store what they receive in `received` (path -> bytes, headers)."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.received: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer._get(self)

            def do_HEAD(self) -> None:
                outer._get(self, head=True)

            def do_PUT(self) -> None:
                outer._store(self)

            def do_POST(self) -> None:
                outer._store(self)

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="file server", daemon=True)
        self._thread.start()

    def add(self, path: str, data: bytes, **options: Any) -> Served:
        served = Served(data, **options)
        if served.etag is None:
            served.etag = '"' + hashlib.sha1(data, usedforsecurity=False).hexdigest() + '"'
        if served.last_modified is None:
            served.last_modified = email.utils.formatdate(1_700_000_000, usegmt=True)
        self.files[path] = served
        return served

    def stop(self) -> None:
        self.server.shutdown()
        self._thread.join(timeout=10)
        self.server.server_close()

    def _get(self, h: BaseHTTPRequestHandler, head: bool = False) -> None:
        path = unquote(urlsplit(h.path).path)
        with self.lock:
            self.requests.append((h.command, path))
            f = self.files.get(path)
        if f is None:
            self._reply(h, 404, b"not found")
            return
        f.gets += 1
        data, start, status = f.data, 0, 200
        headers = {"ETag": f.etag or "", "Last-Modified": f.last_modified or ""}
        if f.ranges:
            headers["Accept-Ranges"] = "bytes"
        if f.disposition:
            headers["Content-Disposition"] = f.disposition
        asked = h.headers.get("Range")
        if asked:
            f.ranges_asked.append(asked)
        if_range = h.headers.get("If-Range")
        if (
            asked
            and f.ranges
            and (not f.if_range or if_range is None or if_range in (f.etag, f.last_modified))
        ):
            m = re.match(r"bytes=(\d+)-$", asked)
            if m:
                start = int(m.group(1))
                if start >= len(data):
                    headers["Content-Range"] = f"bytes */{len(data)}"
                    self._reply(h, 416, b"", headers)
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if head:
            return
        cut = f.cut_after.pop(0) if f.cut_after else None
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)  # the client sees the connection end mid-body
            return
        h.wfile.write(body)

    def _store(self, h: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(h.path).path)
        length = int(h.headers.get("Content-Length", 0))
        data = h.rfile.read(length)
        with self.lock:
            self.requests.append((h.command, path))
            self.received[path] = (data, dict(h.headers.items()))
        self._reply(
            h, 201, b"stored", {"ETag": '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'}
        )

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)


def multipart_file(body: bytes, content_type: str) -> tuple[str, str, bytes]:
    """(field name, file name, bytes) of the one file in a multipart/form-data body."""
    boundary = content_type.split("boundary=", 1)[1].encode()
    part = body.split(b"--" + boundary)[1]
    head, _, rest = part.partition(b"\r\n\r\n")
    disposition = next(
        line for line in head.decode().split("\r\n") if line.lower().startswith("content-disposition")
    )
    name = re.search(r'name="([^"]*)"', disposition)
    filename = re.search(r'filename="([^"]*)"', disposition)
    return (name.group(1) if name else "", filename.group(1) if filename else "", rest[: -len(b"\r\n")])


# -- WebDAV (wsgidav) -------------------------------------------------------------------


def _known_length(app: Callable[..., Any]) -> Callable[..., Any]:
    """wsgidav reads a request body until EOF, relying on the server to end it at its
    Content-Length (cheroot does); werkzeug's server hands over the socket, so a kept-alive
    connection would block the read. End it here."""
    import io

    from werkzeug.wsgi import LimitedStream

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not environ.get("wsgi.input_terminated"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], length) if length else io.BytesIO()
        return app(environ, start_response)

    return wrapped


class DavServer(ThreadServer):
    """wsgidav serving `root` on 127.0.0.1, anonymous or with one Basic-auth user."""

    def __init__(self, root: Path, user: tuple[str, str] | None = None) -> None:
        from wsgidav.wsgidav_app import WsgiDAVApp

        users: dict[str, Any] = {"*": True}
        if user is not None:
            users = {"*": {user[0]: {"password": user[1]}}}
        config = {
            "host": HOST,
            "port": 0,
            "provider_mapping": {"/": str(root)},
            "simple_dc": {"user_mapping": users},
            "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
            "verbose": 0,
            "logging": {"enable": False, "enable_loggers": []},
            "property_manager": True,
            "lock_storage": True,
        }
        self.app = CountingApp(_known_length(WsgiDAVApp(config)), classify=lambda method, path, query: method)
        super().__init__(self.app)

    def methods(self) -> list[str]:
        return [r[0] for r in self.app.snapshot()]


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` from a test thread (a guard with a deadline, not a timing check)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.005)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="run moto's S3 server on 127.0.0.1 until stdin closes")
    p.add_argument("what", choices=["moto"])
    p.add_argument("--port", type=int, default=0)
    ns = p.parse_args(argv)
    server = MotoServer(ns.port)
    print(f"PORT {server.port}", flush=True)
    sys.stdin.read()  # until the parent closes it (or dies)
    server.stop()


if __name__ == "__main__":
    main()
