"""kill -9 in the middle of a multipart upload: the next engine on the same database
finishes it without sending a finished part again (counted at the S3 server)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.crash.harness import integrity_check, read_only
from tests.net.conftest import MiB, until, write
from tests.net.faults import FaultProxy
from tests.net.servers import MotoServer

ROOT = Path(__file__).resolve().parents[2]
PART = 5 * MiB


class NetWorker:
    """`python -m tests.net.worker` with its stdout read line by line (never sleep-and-hope)."""

    def __init__(self, db: Path, *args: str, stderr: Path) -> None:
        self._err = open(stderr, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.net.worker", str(db), *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=os.environ.copy(),
        )
        self.lines: list[str] = []
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr = stderr

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._queue.put(raw.decode().rstrip("\n"))
        self._queue.put(None)

    def expect(self, word: str, count: int = 1, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while sum(1 for ln in self.lines if ln.split(" ", 1)[0] == word) < count:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                raise AssertionError(
                    f"no {count} x {word} (exit {self.proc.poll()}): {self.lines}\n{self.stderr.read_text()[-3000:]}"
                )
            if line:
                self.lines.append(line)
        return [ln for ln in self.lines if ln.split(" ", 1)[0] == word][count - 1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[NetWorker]]:
    made: list[NetWorker] = []
    yield made
    for w in made:
        w.close()


@pytest.mark.crash
def test_given_a_multipart_upload_when_killed_mid_way_then_the_next_engine_finishes_it_without_resending_finished_parts(
    tmp_path: Path, moto: MotoServer, s3: Any, bucket: str, proxy: FaultProxy, workers: list[NetWorker]
) -> None:
    db = tmp_path / "tasks.db"
    data = write(tmp_path / "disk.img", 4 * PART + 17, seed=11)
    payload = {
        "inputs": [str(tmp_path / "disk.img")],
        "bucket": bucket,
        "endpoint_url": proxy.url,
        "credentials": "env",
        "part_size": PART,
    }
    proxy.stall(match="partNumber=3")  # parts 1 and 2 finish, 3 hangs on the wire: kill then
    first = NetWorker(db, "--submit", json.dumps(payload), stderr=tmp_path / "w1.err")
    workers.append(first)
    parent = int(first.expect("SUBMITTED").split()[1])
    first.expect("PART", 2)
    proxy.wait_for(lambda p: bool(p.seen("stalled")))
    first.kill()
    assert integrity_check(db) == "ok"
    with read_only(db) as conn:
        parts = dict(
            conn.execute(
                "SELECT json_extract(payload, '$.part'), state FROM tasks WHERE parent_id = ? ", (parent,)
            ).fetchall()
        )
    assert parts == {1: "completed", 2: "completed", 3: "running", 4: "pending", 5: "pending"}
    assert moto.parts_sent() == {1: 1, 2: 1}

    proxy.release()
    second = NetWorker(db, stderr=tmp_path / "w2.err")
    workers.append(second)
    assert second.expect("DONE") == f"DONE {parent} completed"
    assert moto.parts_sent() == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}  # parts 1 and 2 never again
    assert s3.get_object(Bucket=bucket, Key="disk.img")["Body"].read() == data
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert moto.count("CreateMultipartUpload") == 1  # the same upload id, resumed


@pytest.mark.crash
async def test_given_a_multipart_upload_killed_mid_way_when_cancelled_in_the_next_engine_then_the_upload_is_aborted(
    tmp_path: Path, moto: MotoServer, s3: Any, bucket: str, proxy: FaultProxy, workers: list[NetWorker]
) -> None:
    """The upload id lives only in the database after the kill: the cleanup hook of the
    next engine must find it there, or the finished parts stay on the server for good."""
    from core import Engine, EngineConfig, TaskState
    from core.jobs.net import register_network

    db = tmp_path / "tasks.db"
    write(tmp_path / "disk.img", 4 * PART + 17, seed=12)
    payload = {"inputs": [str(tmp_path / "disk.img")], "bucket": bucket, "endpoint_url": proxy.url,
               "credentials": "env", "part_size": PART}  # fmt: skip
    proxy.stall(match="partNumber=3")
    first = NetWorker(db, "--submit", json.dumps(payload), stderr=tmp_path / "w1.err")
    workers.append(first)
    parent = int(first.expect("SUBMITTED").split()[1])
    first.expect("PART", 2)
    await proxy.wait_for_async(lambda p: bool(p.seen("stalled")))
    first.kill()
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == ["disk.img"]

    engine = await Engine.open(db, EngineConfig(max_concurrency=1))
    register_network(engine)
    await engine.start()
    try:
        await engine.cancel(parent)
        proxy.release()  # the part the new engine sent into the stall sees its connection end
        rec = await engine.wait(parent, timeout=30)
        assert rec.state is TaskState.CANCELLED
        await until(lambda: moto.count("AbortMultipartUpload") == 1)
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert moto.parts_sent() == {1: 1, 2: 1}  # nothing more was sent for a cancelled upload
    finally:
        proxy.release()
        await engine.stop(grace=0)
