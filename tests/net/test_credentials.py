"""Credentials: the keyring API the window's dialog calls (a file keyring in a temporary
folder stands in for the OS keyring), the environment, the machine without a keyring, and
the promise that a secret never reaches the database files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import Engine, TaskState
from core.jobs.net import credentials, submit
from core.testing import FakeClock
from tests.net.conftest import SECRET, finish, write
from tests.net.servers import MotoServer


def test_given_a_file_keyring_when_credentials_are_stored_then_they_load_back_and_print_masked(
    keyring_file: Path,
) -> None:
    secret = credentials.S3Credentials(
        access_key_id="AKIDEXAMPLE", secret_access_key=SECRET, session_token="tok"
    )
    credentials.store("work-s3", secret)
    credentials.store("dav", credentials.BasicAuth(username="alice", password="pw"))
    credentials.store("api", credentials.BearerToken(token="t0k3n"))
    assert credentials.load("work-s3") == secret
    assert credentials.load("dav") == credentials.BasicAuth(username="alice", password="pw")
    assert credentials.load("api") == credentials.BearerToken(token="t0k3n")
    assert SECRET not in repr(secret) and "pw" not in repr(credentials.load("dav"))
    assert "t0k3n" not in repr(credentials.load("api"))
    assert credentials.available() and credentials.backend_name()
    assert credentials.exists("dav") and not credentials.exists("nope")
    assert credentials.delete("dav") is True and credentials.delete("dav") is False
    assert "[taskdeck]" in keyring_file.read_text()  # it went to the keyring (base64 there)


def test_given_no_entry_when_loaded_then_the_error_names_it(keyring_file: Path) -> None:
    with pytest.raises(credentials.CredentialNotFound, match=r"no keyring entry named 'missing'"):
        credentials.load("missing")


def test_given_bad_names_when_stored_then_they_are_refused(keyring_file: Path) -> None:
    for name in ("", "   ", "env", "x" * 300):
        with pytest.raises(credentials.CredentialsError, match="credentials:"):
            credentials.store(name, credentials.BearerToken(token="t"))


def test_given_an_entry_of_the_wrong_kind_when_used_then_the_error_says_so(keyring_file: Path) -> None:
    credentials.store("dav", credentials.BasicAuth(username="alice", password="pw"))
    credentials.store("s3", credentials.S3Credentials(access_key_id="a", secret_access_key="b"))
    with pytest.raises(credentials.CredentialsError, match="'dav' holds no S3 access key"):
        credentials.for_s3("dav")
    with pytest.raises(credentials.CredentialsError, match="'s3' holds an S3 key, not an HTTP login"):
        credentials.for_http("s3")


def test_given_a_foreign_keyring_entry_when_loaded_then_it_is_refused_without_quoting_it(
    keyring_file: Path,
) -> None:
    import keyring

    keyring.set_password(credentials.SERVICE, "foreign", "hunter2-plain-password")
    with pytest.raises(credentials.CredentialsError) as info:
        credentials.load("foreign")
    assert "not one Taskdeck stored" in str(info.value) and "hunter2" not in str(info.value)


def test_given_no_keyring_backend_when_credentials_are_used_then_a_clear_error_says_what_to_do(
    no_keyring: None,
) -> None:
    assert credentials.available() is False and credentials.backend_name() is None
    for call in (
        lambda: credentials.store("x", credentials.BearerToken(token="t")),
        lambda: credentials.load("x"),
        lambda: credentials.for_s3("x"),
    ):
        with pytest.raises(credentials.NoKeyring, match=r"no keyring is available .*credentials='env'"):
            call()
    assert isinstance(credentials.s3_from_env(), credentials.S3Credentials)  # env still works


def test_given_the_environment_when_read_then_the_standard_variables_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    assert credentials.s3_from_env(env) == credentials.S3Credentials(
        access_key_id="k", secret_access_key="s", session_token="t"
    )
    with pytest.raises(credentials.CredentialsError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        credentials.s3_from_env({"AWS_ACCESS_KEY_ID": "k"})
    assert credentials.http_from_env({"TASKDECK_HTTP_TOKEN": "x"}) == credentials.BearerToken(token="x")
    assert credentials.http_from_env(
        {"TASKDECK_HTTP_USERNAME": "u", "TASKDECK_HTTP_PASSWORD": "p"}
    ) == credentials.BasicAuth(username="u", password="p")
    with pytest.raises(credentials.CredentialsError, match="TASKDECK_HTTP_TOKEN"):
        credentials.http_from_env({})
    assert credentials.for_http(None) is None and credentials.for_s3(None) is None


async def test_given_no_keyring_when_an_upload_names_an_entry_then_it_fails_for_good_saying_why(
    no_keyring: None, net: Engine, clock: FakeClock, moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    write(tmp_path / "a.bin", 10)
    payload = {
        "inputs": [str(tmp_path / "a.bin")],
        "bucket": bucket,
        "endpoint_url": moto.url,
        "credentials": "work",
    }
    rec = await finish(net, clock, (await submit(net, "upload.s3", payload)).id)
    assert rec.state is TaskState.FAILED and rec.attempt == 1
    assert rec.error is not None and rec.error.startswith("no keyring is available to keep credentials")
    after = await net.submit("noop")
    assert (await net.wait(after.id, timeout=10)).state is TaskState.COMPLETED


async def test_given_keyring_credentials_when_uploads_run_and_fail_then_no_secret_byte_reaches_the_database_files(
    keyring_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    net: Engine,
    clock: FakeClock,
    moto: MotoServer,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    db_path: Path,
) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")  # only the keyring has a secret
    token = "FwoGZXIvYXdzEBEaDSESSIONTOKENSECRET"
    credentials.store(
        "work",
        credentials.S3Credentials(access_key_id="AKIDTEST", secret_access_key=SECRET, session_token=token),
    )
    write(tmp_path / "up" / "big.bin", 6 * 1024 * 1024)
    write(tmp_path / "up" / "small.bin", 100)
    base = {"endpoint_url": moto.url, "credentials": "work", "part_size": 5 * 1024 * 1024}
    ok = await submit(net, "upload.s3", {"inputs": [str(tmp_path / "up")], "bucket": bucket, **base})
    bad = await submit(
        net, "upload.s3", {"inputs": [str(tmp_path / "up")], "bucket": "no-such-bucket-x", **base}
    )
    assert (await finish(net, clock, ok.id)).state is TaskState.COMPLETED
    assert (await finish(net, clock, bad.id)).state is TaskState.FAILED
    net.logs(ok.id)  # flush the log lines
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert stored  # the database, its WAL and shared memory as they are on disk now
    for secret in (SECRET, token):
        assert secret.encode() not in stored
        assert secret not in repr(net.get(ok.id)) + repr(net.get(bad.id))
