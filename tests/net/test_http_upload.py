"""upload.http against a real HTTP server and wsgidav on 127.0.0.1, with the fault proxy
injecting 500s and dropped connections."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import Engine, InvalidSubmission, RetryPolicy, TaskState
from core.jobs.net import credentials, prepare, submit
from core.testing import FakeClock
from tests.net.conftest import MiB, events_of_kind, finish, write
from tests.net.faults import FaultProxy
from tests.net.servers import DavServer, FileServer, multipart_file


async def test_given_files_and_a_folder_when_put_then_each_arrives_under_the_url_with_the_headers(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    a = write(tmp_path / "a b.txt", 3000, seed=1)
    nested = write(tmp_path / "docs" / "x" / "r.pdf", MiB + 5, seed=2)
    payload = {
        "inputs": [str(tmp_path / "a b.txt"), str(tmp_path / "docs")],
        "url": files.url + "/inbox/",
        "headers": {"X-Client": "taskdeck-test"},
    }
    rec = await finish(net, clock, (await submit(net, "upload.http", payload)).id)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert files.received["/inbox/a b.txt"][0] == a
    assert files.received["/inbox/docs/x/r.pdf"][0] == nested
    headers = files.received["/inbox/docs/x/r.pdf"][1]
    assert headers["X-Client"] == "taskdeck-test" and headers["Content-Type"] == "application/pdf"
    assert rec.result["files"] == 2 and [s["status"] for s in rec.result["sent"]] == [201, 201]
    assert (rec.bytes_done, rec.bytes_total) == (len(a) + len(nested), len(a) + len(nested))
    assert rec.group == f"127.0.0.1:{files.port}"


async def test_given_post_when_uploaded_then_the_file_goes_as_a_multipart_form(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    data = write(tmp_path / "photo.jpg", 70_000)
    payload = {"inputs": [str(tmp_path / "photo.jpg")], "url": files.url + "/form", "method": "POST",
               "form_field": "upload"}  # fmt: skip
    rec = await finish(net, clock, (await submit(net, "upload.http", payload)).id)
    assert rec.state is TaskState.COMPLETED, rec.error
    body, headers = files.received["/form"]
    assert multipart_file(body, headers["Content-Type"]) == ("upload", "photo.jpg", data)
    assert int(headers["Content-Length"]) == len(body)


async def test_given_a_server_failing_with_500_when_uploading_then_it_retries_with_the_reason_and_completes(
    net: Engine, clock: FakeClock, files: FileServer, file_proxy: FaultProxy, tmp_path: Path
) -> None:
    """ux Q-14: retrying on its own, "HTTP 500 … attempt 1 of 5" in the retrying event."""
    data = write(tmp_path / "a.bin", 5000)
    file_proxy.fail(2, status=500)
    res = await submit(
        net, "upload.http", {"inputs": [str(tmp_path / "a.bin")], "url": file_proxy.url + "/up/"}
    )
    rec = await finish(net, clock, res.id)
    assert rec.state is TaskState.COMPLETED, rec.error
    errors = [e.data["error"] for e in events_of_kind(net, res.id, "retrying")]
    assert errors == [
        f"TransferError: HTTP 500 Internal Server Error from PUT {file_proxy.url}/up/a.bin — attempt 1 of 5",
        f"TransferError: HTTP 500 Internal Server Error from PUT {file_proxy.url}/up/a.bin — attempt 2 of 5",
    ]
    assert files.received["/up/a.bin"][0] == data


async def test_given_failures_past_the_retries_when_retried_later_then_it_completes(
    net: Engine, clock: FakeClock, files: FileServer, file_proxy: FaultProxy, tmp_path: Path
) -> None:
    """ux Q-13: failed with "HTTP 500 … attempt 3 of 3"; Retry all failed with the proxy
    healthy completes."""
    write(tmp_path / "a.bin", 10)
    write(tmp_path / "b.bin", 20)
    file_proxy.fail(None, status=500)
    retry = RetryPolicy.fixed(2, 3.0)
    ids = []
    for n in ("a.bin", "b.bin"):
        payload = {"inputs": [str(tmp_path / n)], "url": file_proxy.url + "/"}
        ids.append((await submit(net, "upload.http", payload, retry=retry)).id)
    for task_id, name in zip(ids, ("a.bin", "b.bin"), strict=True):
        rec = await finish(net, clock, task_id)
        assert rec.state is TaskState.FAILED
        assert rec.error == (
            f"TransferError: HTTP 500 Internal Server Error from PUT {file_proxy.url}/{name} — attempt 3 of 3"
        )
    file_proxy.clear()
    again = await net.retry_failed("upload.http")
    assert len(again) == 2
    for task_id in again:
        assert (await finish(net, clock, task_id)).state is TaskState.COMPLETED
    assert sorted(files.received) == ["/a.bin", "/b.bin"]


async def test_given_dropped_connections_when_uploading_then_it_retries_and_completes(
    net: Engine, clock: FakeClock, files: FileServer, file_proxy: FaultProxy, tmp_path: Path
) -> None:
    data = write(tmp_path / "a.bin", 2 * MiB)
    file_proxy.drop(2)
    res = await submit(
        net, "upload.http", {"inputs": [str(tmp_path / "a.bin")], "url": file_proxy.url + "/a"}
    )
    rec = await finish(net, clock, res.id)
    assert rec.state is TaskState.COMPLETED, rec.error
    errors = [e.data["error"] for e in events_of_kind(net, res.id, "retrying")]
    assert len(errors) == 2 and all(e.startswith("TransferError: connection lost during PUT") for e in errors)
    assert files.received["/a"][0] == data


@pytest.mark.parametrize("status", [403, 404])
async def test_given_a_4xx_when_uploading_then_it_fails_at_once(
    net: Engine, clock: FakeClock, file_proxy: FaultProxy, tmp_path: Path, status: int
) -> None:
    write(tmp_path / "a.bin", 10)
    file_proxy.fail(None, status=status)
    res = await submit(
        net, "upload.http", {"inputs": [str(tmp_path / "a.bin")], "url": file_proxy.url + "/a"}
    )
    rec = await finish(net, clock, res.id)
    assert rec.state is TaskState.FAILED and rec.attempt == 1
    phrase = {403: "Forbidden", 404: "Not Found"}[status]
    assert rec.error == f"HTTP {status} {phrase} from PUT {file_proxy.url}/a"


async def test_given_webdav_when_a_folder_is_uploaded_then_missing_folders_are_made_first(
    net: Engine, clock: FakeClock, dav: DavServer, dav_root: Path, tmp_path: Path
) -> None:
    one = write(tmp_path / "album" / "2024" / "may" / "one.jpg", 1000, seed=1)
    two = write(tmp_path / "album" / "two.jpg", 2000, seed=2)
    (dav_root / "photos").mkdir()  # exists; photos/new/ and what is below it do not
    payload = {"inputs": [str(tmp_path / "album")], "url": dav.url + "/photos/new/", "webdav": True}
    rec = await finish(net, clock, (await submit(net, "upload.http", payload)).id)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (dav_root / "photos" / "new" / "album" / "2024" / "may" / "one.jpg").read_bytes() == one
    assert (dav_root / "photos" / "new" / "album" / "two.jpg").read_bytes() == two
    methods = dav.methods()
    assert methods.count("PUT") == 2
    assert methods.count("MKCOL") == 4  # new/album/2024/may, each once (new/album is known once made)


async def test_given_a_webdav_login_in_the_keyring_when_uploading_then_it_authenticates_without_it_in_the_payload(
    keyring_file: Path, net: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    root = tmp_path / "davroot"
    root.mkdir()
    server = DavServer(root, user=("alice", "s3cret-pass"))
    try:
        write(tmp_path / "a.txt", 10)
        payload = {"inputs": [str(tmp_path / "a.txt")], "url": server.url + "/", "webdav": True}
        rec = await finish(net, clock, (await submit(net, "upload.http", payload)).id)
        assert rec.state is TaskState.FAILED and rec.error is not None
        assert rec.error.startswith("HTTP 401 Unauthorized from MKCOL")
        credentials.store("dav", credentials.BasicAuth(username="alice", password="s3cret-pass"))
        rec = await finish(
            net, clock, (await submit(net, "upload.http", {**payload, "credentials": "dav"})).id
        )
        assert rec.state is TaskState.COMPLETED, rec.error
        assert (root / "a.txt").exists()
        assert "s3cret-pass" not in repr(rec)
    finally:
        server.stop()


async def test_given_a_folder_with_a_non_utf8_name_when_put_then_it_arrives_under_its_latin1_reading(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    folder = os.fsencode(tmp_path / "album")
    os.mkdir(folder)
    Path(os.fsdecode(os.path.join(folder, b"caf\xe9.jpg"))).write_bytes(b"jpeg")
    payload = {"inputs": [str(tmp_path / "album")], "url": files.url + "/in/"}
    rec = await finish(net, clock, (await submit(net, "upload.http", payload)).id)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert files.received["/in/album/café.jpg"][0] == b"jpeg"


def test_given_a_non_utf8_input_when_prepared_then_it_is_refused_naming_it(tmp_path: Path) -> None:
    raw = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg"))
    with open(raw, "wb") as fh:
        fh.write(b"x")
    with pytest.raises(InvalidSubmission, match=r"payload.inputs\[0\]: .*caf\\xe9.jpg is not a UTF-8 name"):
        prepare("upload.http", {"inputs": [raw], "url": "http://h/"})


async def test_given_a_token_in_the_url_when_the_upload_fails_then_it_is_in_no_error_result_log_or_label(
    net: Engine, clock: FakeClock, files: FileServer, file_proxy: FaultProxy, tmp_path: Path
) -> None:
    write(tmp_path / "a.bin", 10)
    file_proxy.fail(None, status=403, match="/denied")
    query = "?access_token=t0ps3cr3t&page=2"
    ok = await submit(
        net, "upload.http", {"inputs": [str(tmp_path / "a.bin")], "url": file_proxy.url + "/ok/" + query}
    )
    bad = await submit(
        net, "upload.http", {"inputs": [str(tmp_path / "a.bin")], "url": file_proxy.url + "/denied" + query}
    )
    recs = [await finish(net, clock, r.id) for r in (ok, bad)]
    assert recs[1].error == f"HTTP 403 Forbidden from PUT {file_proxy.url}/denied?access_token=***&page=2"
    for rec in recs:
        kept = repr(rec).replace(repr(rec.payload), "") + repr(net.logs(rec.id)) + repr(net.events_of(rec.id))
        assert "t0ps3cr3t" not in kept, kept
