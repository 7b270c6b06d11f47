"""Fixtures of the network kinds' tests: real servers on 127.0.0.1 (moto's S3, a Range
file server, wsgidav), the fault proxy in front of them, a file keyring in a temporary
folder, and an engine on a real file with the network kinds and a fake clock (retry
backoff and bandwidth waits move only when a test advances it)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core import Engine, EngineConfig, Event, TaskRecord
from core.jobs.net import register_network
from core.testing import FakeClock
from tests.conftest import noop, until
from tests.net.faults import FaultProxy
from tests.net.servers import DavServer, FileServer, MotoServer

MiB = 1024 * 1024
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRET"  # an access key that must appear nowhere


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Test credentials in the environment, and nothing of the user's AWS setup; never ask
    an instance metadata service (it is not on 127.0.0.1)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def s3(moto: MotoServer) -> Any:
    """A boto3 client straight to moto, for setting up and checking (not through the proxy)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(s3: Any, moto: MotoServer) -> str:
    """A fresh bucket; the server's request log starts empty."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    moto.app.clear()
    return name


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    p = FaultProxy(moto.port).start()
    yield p
    p.stop()


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.stop()


@pytest.fixture
def file_proxy(files: FileServer) -> Iterator[FaultProxy]:
    p = FaultProxy(files.port).start()
    yield p
    p.stop()


@pytest.fixture
def dav_root(tmp_path: Path) -> Path:
    root = tmp_path / "dav"
    root.mkdir()
    return root


@pytest.fixture
def dav(dav_root: Path) -> Iterator[DavServer]:
    server = DavServer(dav_root)
    yield server
    server.stop()


@pytest.fixture
def keyring_file(tmp_path: Path) -> Iterator[Path]:
    """keyrings.alt's plain file backend in a temporary folder, as the process's keyring."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    before = keyring.get_keyring()
    backend = PlaintextKeyring()
    path = tmp_path / "keyring" / "keyring_pass.cfg"
    path.parent.mkdir()
    backend.file_path = str(path)  # type: ignore[misc]
    keyring.set_keyring(backend)
    yield path
    keyring.set_keyring(before)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """A machine without any keyring backend."""
    import keyring
    from keyring.backends import fail

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(before)


async def open_net_engine(db_path: Path, clock: FakeClock, **config: Any) -> Engine:
    options: dict[str, Any] = {"max_concurrency": 4, "preempt_grace": 1.0, **config}
    eng = await Engine.open(db_path, EngineConfig(clock=clock, **options))
    register_network(eng)
    eng.register("noop", noop)
    await eng.start()
    return eng


@pytest.fixture
async def net(db_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    """A started engine with the network kinds, a fake clock and 4 slots."""
    eng = await open_net_engine(db_path, clock)
    yield eng
    await eng.stop(grace=0)


def write(path: Path, size: int, seed: int = 0) -> bytes:
    """A file of `size` reproducible random bytes (so a misplaced part shows)."""
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


async def finish(
    eng: Engine, clock: FakeClock, task_id: int, timeout: float = 30.0, step: float = 60.0
) -> TaskRecord:
    """Wait for the task to end, moving the fake clock past each retry's backoff (and any
    bandwidth wait) whenever nothing else moves."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rec = eng.get(task_id)
        assert rec is not None
        if rec.is_terminal:
            return rec
        if loop.time() > deadline:
            raise AssertionError(f"task {task_id} still {rec.state} after {timeout} s: {rec.error}")
        if _backing_off(eng):
            clock.advance(step)
        await asyncio.sleep(0.01)


def _backing_off(eng: Engine) -> bool:
    """Only the clock can move things on: nothing runs (a retry waits for its run_at), or
    what runs waits for bandwidth."""
    snap = eng.snapshot()
    if snap.bandwidth is not None and snap.bandwidth.waiting:
        return True
    return not snap.running


def events_of_kind(eng: Engine, task_id: int, kind: str) -> list[Event]:
    return [e for e in eng.events_of(task_id) if e.kind == kind]


__all__ = ["SECRET", "MiB", "events_of_kind", "finish", "open_net_engine", "until", "write"]
