"""Payloads of the network kinds are refused at submit, with the field named, by the engine
and by a Client in another process alike; `prepare` adds what needs this machine (files
that exist) and the defaults (group = host, key = source + destination)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core import Client, Engine, InvalidSubmission
from core.jobs.net import prepare, submission
from tests.cli.conftest import ok as cli_ok


@pytest.fixture(params=["engine", "client"])
async def target(
    request: pytest.FixtureRequest, net: Engine, db_path: Path
) -> AsyncIterator[Engine | Client]:
    """The engine itself, or a Client on its database (validating with the published schema)."""
    if request.param == "engine":
        yield net
        return
    client = await Client.open(db_path)
    yield client
    await client.close()


def s3_payload(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    (tmp_path / "a.txt").write_text("a")
    return {"inputs": [str(tmp_path / "a.txt")], "bucket": "photos", **changes}


BAD = [
    ("upload.s3", {"bucket": "photos"}, "payload", "'inputs' is a required property"),
    ("upload.s3", {"inputs": [], "bucket": "photos"}, "payload.inputs", "should be non-empty"),
    ("upload.s3", {"inputs": ["rel/a.txt"], "bucket": "photos"}, "payload.inputs[0]", "a_relative_path"),
    ("upload.s3", {"inputs": ["/a"], "bucket": "photos", "endpoint_url": "ftp://h/"}, "payload.endpoint_url", "not_an_http_or_https_URL"),
    ("upload.s3", {"inputs": ["/a"], "bucket": "photos", "endpoint_url": "http://me:pw@h/"}, "payload.endpoint_url", "not_an_http_or_https_URL"),
    ("upload.s3", {"inputs": ["/a"], "bucket": "photos", "part_size": 1024}, "payload.part_size", "less than the minimum"),
    ("upload.s3", {"inputs": ["/a"], "bucket": "photos", "aws_secret_access_key": "x"}, "payload", "Additional properties"),
    ("upload.s3", {"inputs": ["/a"], "bucket": "photos", "bandwidth_limit": 0}, "payload.bandwidth_limit", "less than or equal"),
    ("upload.http", {"inputs": ["/a"], "url": "http://h/", "headers": {"Authorization": "Bearer x"}}, "payload.headers", "Authorization_and_Cookie"),
    ("upload.http", {"inputs": ["/a"], "url": "http://h/", "headers": {"cOOkie": "s=1"}}, "payload.headers", "Authorization_and_Cookie"),
    ("upload.http", {"inputs": ["/a"], "url": "http://h/", "webdav": True, "method": "POST"}, "payload.method", "'PUT' was expected"),
    ("upload.http", {"inputs": ["/a"], "url": "file:///etc/passwd"}, "payload.url", "not_an_http_or_https_URL"),
    ("download.http", {"url": "http://h/f", "output_dir": "downloads"}, "payload.output_dir", "a_relative_path"),
    ("download.http", {"url": "http://h/f", "output_dir": "/d", "headers": {"Proxy-Authorization": "x"}}, "payload.headers", "Authorization_and_Cookie"),
    ("download.http", {"url": "http://h/f", "output_dir": "/d", "sha256": "abc"}, "payload.sha256", "does not match"),
    ("download.http", {"url": "http://h/f", "output_dir": "/d", "filename": "../x"}, "payload.filename", "does not match"),
    ("upload.http", {"inputs": ["/a"], "url": "http://h/", "headers": {"X-A": "1\r\nX-Evil: 2"}}, "payload.headers.X-A", "a_header_value_holds_only_printable_ASCII"),
    ("upload.http", {"inputs": ["/a"], "url": "http://h/", "headers": {"X-A": "1\n"}}, "payload.headers.X-A", "a_header_value_holds_only_printable_ASCII"),
    ("download.http", {"url": "http://h/f", "output_dir": "/d", "headers": {"X-Name": "café"}}, "payload.headers.X-Name", "a_header_value_holds_only_printable_ASCII"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "payload", "field", "problem"), BAD)
async def test_given_a_bad_payload_when_submitted_then_it_is_refused_naming_the_field(
    target: Engine | Client, kind: str, payload: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(InvalidSubmission) as info:
        await target.submit(kind, payload)
    assert info.value.field == field
    assert problem in str(info.value)
    assert "Bearer x" not in str(info.value) and "s=1" not in str(info.value)  # no header value echoed


async def test_given_a_secret_header_when_prepared_then_the_message_names_the_header_plainly() -> None:
    with pytest.raises(InvalidSubmission, match=r"payload.headers.Cookie: not allowed: name a keyring entry"):
        prepare("download.http", {"url": "http://h/f", "output_dir": "/tmp", "headers": {"Cookie": "s=1"}})


def test_given_missing_files_when_prepared_then_the_input_is_named(tmp_path: Path) -> None:
    payload = s3_payload(tmp_path)
    payload["inputs"].append(str(tmp_path / "gone.jpg"))
    with pytest.raises(InvalidSubmission, match=r"payload.inputs\[1\]: no such file or folder: .*gone.jpg"):
        prepare("upload.s3", payload)
    with pytest.raises(InvalidSubmission, match=r"payload.output_dir: .* is not an existing folder"):
        prepare("download.http", {"url": "http://h/f", "output_dir": str(tmp_path / "nope")})
    (tmp_path / "dir").mkdir()
    with pytest.raises(InvalidSubmission, match=r"payload.url: names one file .* end it with '/'"):
        prepare("upload.http", {"inputs": [str(tmp_path / "dir")], "url": "http://h/upload"})


def test_given_a_network_payload_when_prepared_then_group_is_the_host_and_key_is_source_plus_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    payload = s3_payload(tmp_path, endpoint_url="http://127.0.0.1:9000", prefix="2024")
    payload["inputs"] = ["a.txt"]  # relative in a dialog's hands: made absolute here
    checked, options = prepare("upload.s3", payload)
    assert checked["inputs"] == [str(tmp_path / "a.txt")]
    assert options["group"] == "127.0.0.1:9000"
    assert options["label"] == "a.txt → s3://photos/2024/"
    same = prepare("upload.s3", {**payload, "inputs": [str(tmp_path / "a.txt")]})[1]["key"]
    other = prepare("upload.s3", {**payload, "prefix": "2025"})[1]["key"]
    assert options["key"] == same != other
    assert (
        prepare("upload.s3", {"inputs": [str(tmp_path / "a.txt")], "bucket": "b"})[1]["group"]
        == "s3.amazonaws.com"
    )
    _, dl = prepare(
        "download.http", {"url": "https://Files.Example.org/a/report%20v2.pdf", "output_dir": str(tmp_path)}
    )
    assert dl["group"] == "files.example.org" and dl["label"] == "report v2.pdf ← files.example.org"
    sub = submission("upload.s3", payload, priority=10, group="mine")
    assert (sub.group, sub.priority, sub.key) == ("mine", 10, options["key"])  # given options win


def test_given_the_cli_when_kinds_is_listed_then_the_network_kinds_show_their_schemas(db_path: Path) -> None:
    text = cli_ok(db_path, "kinds").out
    for kind in ("upload.s3", "upload.http", "download.http"):
        assert kind in text
    assert "bandwidth_limit" in text and "credentials" in text and "a keyring entry name" in text
    kinds = {k["kind"]: k for k in cli_ok(db_path, "kinds", "--json").json}
    assert kinds["upload.s3"]["schema"]["required"] == ["inputs", "bucket"]
    assert kinds["upload.s3"]["run_in"] == "thread" and kinds["download.http"]["retry"]["max_retries"] == 4


async def test_given_a_plain_engine_submit_then_the_network_defaults_and_file_checks_apply(
    net: Engine, tmp_path: Path
) -> None:
    """No helper needed: Engine.submit itself fills group/key/label and checks the files."""
    payload = s3_payload(tmp_path, endpoint_url="http://127.0.0.1:9000")
    first = await net.submit("upload.s3", payload)
    rec = net.get(first.id)
    assert rec is not None
    assert rec.group == "127.0.0.1:9000" and rec.label == "a.txt → s3://photos/"
    assert rec.key == prepare("upload.s3", payload)[1]["key"]
    again = await net.submit("upload.s3", payload)  # the same drop twice is queued once
    assert (again.id, again.outcome.value) == (first.id, "duplicate")
    mine = await net.submit("upload.s3", payload, group="mine", key="k", label="L")
    rec = net.get(mine.id)
    assert rec is not None and (rec.group, rec.key, rec.label) == ("mine", "k", "L")
    with pytest.raises(InvalidSubmission) as info:
        await net.submit("upload.s3", {**payload, "inputs": [str(tmp_path / "gone.jpg")]})
    assert info.value.field == "payload.inputs[0]" and "no such file or folder" in str(info.value)


def test_given_the_cli_when_a_network_task_is_submitted_then_it_gets_the_same_defaults(
    db_path: Path, tmp_path: Path
) -> None:
    import json

    payload = s3_payload(tmp_path, endpoint_url="http://127.0.0.1:9000")
    first = cli_ok(db_path, "submit", "upload.s3", "--payload", json.dumps(payload), "--json").json
    again = cli_ok(db_path, "submit", "upload.s3", "--payload", json.dumps(payload), "--json").json
    assert again == {"id": first["id"], "outcome": "duplicate"}
    shown = cli_ok(db_path, "show", str(first["id"]), "--json").json
    assert shown["group"] == "127.0.0.1:9000" and shown["label"] == "a.txt → s3://photos/"
    gone = {**payload, "inputs": [str(tmp_path / "gone.jpg")]}
    from tests.cli.conftest import run as cli_run

    res = cli_run(db_path, "submit", "upload.s3", "--payload", json.dumps(gone))
    assert res.code == 1 and "payload.inputs[0]" in res.err and "no such file or folder" in res.err


def test_given_a_task_queued_before_the_header_rule_when_it_runs_then_a_bad_value_fails_for_good() -> None:
    from core import Permanent
    from core.jobs.net.common import check_headers

    assert check_headers({"X-A": "plain value\twith tab"}) == {"X-A": "plain value\twith tab"}
    for value in ("a\n", "a\r\nX-Evil: 1", "café"):
        with pytest.raises(Permanent, match=r"headers.X-A: only printable ASCII"):
            check_headers({"X-A": value})
