"""download.http against a real HTTP server on 127.0.0.1: names, sha256, resume by Range
(and a clean restart when the server cannot), pause, cancel."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from core import Engine, TaskState
from core.jobs.net import submit
from core.jobs.net.download import name_from_disposition, safe_name
from core.testing import FakeClock
from tests.net.conftest import MiB, events_of_kind, finish, until
from tests.net.faults import FaultProxy
from tests.net.servers import FileServer


def blob(size: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


async def fetch(net: Engine, clock: FakeClock, out: Path, url: str, **extra: object) -> int:
    return (await submit(net, "download.http", {"url": url, "output_dir": str(out), **extra})).id


async def test_given_a_content_disposition_when_downloaded_then_the_file_gets_its_name_and_is_verified(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    data = blob(300_000)
    files.add(
        "/get", data, disposition="attachment; filename=\"report.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
    )
    digest = hashlib.sha256(data).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    task = await fetch(net, clock, out, files.url + "/get?id=7", sha256=digest.upper())
    rec = await finish(net, clock, task)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (out / "résumé.pdf").read_bytes() == data
    assert rec.result == {"path": str(out / "résumé.pdf"), "bytes": len(data), "sha256": digest,
                          "url": files.url + "/get?id=7"}  # fmt: skip
    assert [p.name for p in out.iterdir()] == ["résumé.pdf"]  # no part file left behind


async def test_given_an_existing_file_when_downloaded_again_then_it_is_kept_and_the_new_one_is_numbered(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.csv").write_text("mine")
    files.add("/files/data.csv", b"a,b\n")
    rec = await finish(net, clock, await fetch(net, clock, out, files.url + "/files/data.csv"))
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (out / "data.csv").read_text() == "mine" and (out / "data (1).csv").read_bytes() == b"a,b\n"
    rec = await finish(
        net, clock, await fetch(net, clock, out, files.url + "/files/data.csv", overwrite=True)
    )
    assert (out / "data.csv").read_bytes() == b"a,b\n"


async def test_given_a_wrong_sha256_when_downloaded_then_it_fails_for_good_and_keeps_nothing(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files.add("/a.iso", blob(1000))
    rec = await finish(net, clock, await fetch(net, clock, out, files.url + "/a.iso", sha256="0" * 64))
    assert rec.state is TaskState.FAILED and rec.attempt == 1
    assert rec.error is not None and rec.error.startswith(
        f"sha256 mismatch for {files.url}/a.iso: expected 000"
    )
    assert list(out.iterdir()) == []


async def test_given_a_connection_cut_mid_body_when_the_server_allows_ranges_then_the_retry_resumes_where_it_stopped(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    data = blob(3 * MiB, seed=1)
    served = files.add("/big.bin", data, cut_after=[MiB + 100])
    task = await fetch(net, clock, tmp_path, files.url + "/big.bin", sha256=hashlib.sha256(data).hexdigest())
    rec = await finish(net, clock, task)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (tmp_path / "big.bin").read_bytes() == data
    # only the rest was asked for: from what had arrived (the bytes in the last unfinished
    # read buffer are lost with the connection)
    assert len(served.ranges_asked) == 1 and served.gets == 2
    start = int(served.ranges_asked[0].removeprefix("bytes=").removesuffix("-"))
    assert MiB // 2 <= start <= MiB + 100
    retry = events_of_kind(net, task, "retrying")
    assert len(retry) == 1 and "connection lost during GET" in retry[0].data["error"]
    assert any(f"resuming at byte {start}" in ln.message for ln in net.logs(task))


async def test_given_a_server_without_ranges_when_the_connection_is_cut_then_the_retry_starts_over_cleanly(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    data = blob(2 * MiB, seed=2)
    served = files.add("/big.bin", data, ranges=False, cut_after=[MiB])
    task = await fetch(net, clock, tmp_path, files.url + "/big.bin")
    rec = await finish(net, clock, task)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (tmp_path / "big.bin").read_bytes() == data  # not the first MiB twice
    assert len(served.ranges_asked) == 1 and served.gets == 2
    assert any("starting over" in ln.message for ln in net.logs(task))


async def test_given_the_file_changed_between_attempts_when_resuming_then_if_range_brings_the_new_one_whole(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    old, new = blob(2 * MiB, seed=3), blob(2 * MiB + 10, seed=4)
    files.add("/f.bin", old, cut_after=[MiB])
    task = await fetch(net, clock, tmp_path, files.url + "/f.bin")
    await until(lambda: bool(events_of_kind(net, task, "retrying")))
    files.add("/f.bin", new)  # another ETag: If-Range does not match, the server sends it all
    rec = await finish(net, clock, task)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (tmp_path / "f.bin").read_bytes() == new


async def test_given_a_running_download_when_paused_then_resumed_then_it_goes_on_by_range(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    """ux Q-05 for a download: paused, nothing arrives; resumed, it asks for the rest only."""
    data = blob(4 * MiB, seed=5)
    served = files.add("/movie.mp4", data)
    await net.set_bandwidth_limit(MiB)
    task = await fetch(net, clock, tmp_path, files.url + "/movie.mp4")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20

    def done_bytes() -> int:
        rec = net.get(task)
        return (rec.bytes_done or 0) if rec is not None else 0

    while done_bytes() < MiB:
        assert loop.time() < deadline
        clock.advance(0.05)
        await asyncio.sleep(0.005)
    await net.pause(task)
    await until(lambda: (r := net.get(task)) is not None and r.state is TaskState.PAUSED)
    part = next(tmp_path.glob(".taskdeck-*.part"))
    held = part.stat().st_size
    assert held >= MiB
    for _ in range(20):
        clock.advance(0.5)
        await asyncio.sleep(0.005)
    assert part.stat().st_size == held
    await net.resume(task)
    rec = await finish(net, clock, task, step=0.25)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (tmp_path / "movie.mp4").read_bytes() == data
    assert len(served.ranges_asked) == 1 and int(served.ranges_asked[0][6:-1]) >= MiB


async def test_given_a_running_download_when_cancelled_then_the_partial_file_is_removed(
    net: Engine, clock: FakeClock, files: FileServer, file_proxy: FaultProxy, tmp_path: Path
) -> None:
    files.add("/slow.bin", blob(2 * MiB))
    file_proxy.throttle(256 * 1024)
    task = await fetch(net, clock, tmp_path, file_proxy.url + "/slow.bin")
    await until(lambda: any(tmp_path.glob(".taskdeck-*.part")) and (net.get(task).bytes_done or 0) > 0)  # type: ignore[union-attr]
    await net.cancel(task)
    rec = await finish(net, clock, task)
    assert rec.state is TaskState.CANCELLED
    await until(lambda: not any(tmp_path.glob(".taskdeck-*.part")))
    assert not (tmp_path / "slow.bin").exists()


async def test_given_a_missing_file_when_downloaded_then_it_fails_at_once_with_the_status(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    rec = await finish(net, clock, await fetch(net, clock, tmp_path, files.url + "/nope"))
    assert rec.state is TaskState.FAILED and rec.attempt == 1
    assert rec.error == f"HTTP 404 Not Found from GET {files.url}/nope: Not Found"


def test_given_server_suggested_names_when_made_safe_then_no_path_or_control_character_survives() -> None:
    assert name_from_disposition('attachment; filename="../../etc/passwd"') == "passwd"
    assert name_from_disposition('attachment; filename="a\\\\b.txt"') == "b.txt"
    assert name_from_disposition('inline; filename=".."') is None
    assert (
        name_from_disposition("attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf; filename=x")
        == "€ rates.pdf"
    )
    assert safe_name("x\x00y\n.txt") == "xy.txt"
    assert safe_name("...") is None and safe_name("") is None


async def test_given_a_server_that_ignores_if_range_when_the_file_changed_between_attempts_then_it_starts_over(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    """The 206 answers the Range but carries the new file's ETag: appending its tail to the
    old head would make a file that never existed; the download starts over instead."""
    old, new = blob(2 * MiB, seed=6), blob(2 * MiB, seed=7)  # same size: only the ETag tells
    files.add("/f.bin", old, cut_after=[MiB], if_range=False)
    task = await fetch(net, clock, tmp_path, files.url + "/f.bin")
    await until(lambda: bool(events_of_kind(net, task, "retrying")))
    served = files.add("/f.bin", new, if_range=False)
    rec = await finish(net, clock, task)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (tmp_path / "f.bin").read_bytes() == new
    assert served.gets == 2 and len(served.ranges_asked) == 1  # the range, then the whole file
    assert any("the file changed on the server" in ln.message for ln in net.logs(task))


async def test_given_a_server_that_refuses_the_range_when_resuming_then_it_starts_over_within_the_attempt(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    """A 416 for a part file the server's (now shorter) file does not reach: before, each
    retry asked for the same range again until the retries ran out."""
    old, new = blob(2 * MiB, seed=8), blob(MiB // 2, seed=9)
    files.add("/f.bin", old, cut_after=[MiB], if_range=False)
    task = await fetch(net, clock, tmp_path, files.url + "/f.bin")
    await until(lambda: bool(events_of_kind(net, task, "retrying")))
    files.add("/f.bin", new, if_range=False)
    rec = await finish(net, clock, task)
    assert rec.state is TaskState.COMPLETED, rec.error
    assert (tmp_path / "f.bin").read_bytes() == new
    assert len(events_of_kind(net, task, "retrying")) == 1


async def test_given_a_presigned_url_when_downloaded_then_its_signature_is_in_no_result_error_log_or_label(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    files.add("/a.iso", blob(1000))
    files.add("/b.iso", blob(1000))
    query = "?X-Amz-Credential=AKIAEXAMPLEKEY1234567%2F20260101&X-Amz-Signature=f00dfeedbeef&id=7"
    ok = await fetch(net, clock, tmp_path, files.url + "/a.iso" + query)
    bad = await fetch(net, clock, tmp_path, files.url + "/b.iso" + query, sha256="0" * 64)
    gone = await fetch(net, clock, tmp_path, files.url + "/nope" + query)
    recs = [await finish(net, clock, t) for t in (ok, bad, gone)]
    assert [r.state for r in recs] == [TaskState.COMPLETED, TaskState.FAILED, TaskState.FAILED]
    shown = "?X-Amz-Credential=***&X-Amz-Signature=***&id=7"
    assert recs[0].result["url"] == files.url + "/a.iso" + shown
    assert recs[2].error == f"HTTP 404 Not Found from GET {files.url}/nope{shown}: Not Found"
    for rec in recs:
        kept = repr(rec) + repr(net.logs(rec.id)) + repr(net.events_of(rec.id))
        kept = kept.replace(repr(rec.payload), "")  # the payload holds the URL: it is needed to send
        assert "f00dfeedbeef" not in kept and "AKIAEXAMPLEKEY" not in kept, kept


async def test_given_a_longest_server_name_when_downloaded_twice_then_the_second_is_numbered_not_failed(
    net: Engine, clock: FakeClock, files: FileServer, tmp_path: Path
) -> None:
    files.add("/get", b"data", disposition=f'attachment; filename="{"x" * 251}.bin"')
    first = await finish(net, clock, await fetch(net, clock, tmp_path, files.url + "/get"))
    second = await finish(net, clock, await fetch(net, clock, tmp_path, files.url + "/get?again"))
    assert (first.state, second.state) == (TaskState.COMPLETED, TaskState.COMPLETED), second.error
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".bin")
    assert [len(n.encode()) <= 255 for n in names] == [True, True]
    assert names[0].endswith(" (1).bin") and names[1].endswith("x.bin")


def test_given_hostile_names_when_made_safe_then_they_stay_plain_short_names_in_the_folder() -> None:
    assert safe_name(". .") is None and safe_name(" .. ") is None
    long = safe_name("é" * 300 + ".pdf")
    assert long is not None and long.endswith(".pdf") and len(long.encode()) <= 200
    assert safe_name("/etc/passwd") == "passwd" and safe_name("C:\\Windows\\x.dll") == "x.dll"
