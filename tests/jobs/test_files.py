"""files.copy on real trees: copy, move, sync, dry run, verify; times and modes, unicode
and spaces, symlinks, FIFOs, unreadable files and folders in the way; resuming."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core import Engine, Interrupted, InvalidSubmission, Permanent, TaskState
from core.jobs import files
from tests.crash.harness import ROOT

NAMES = [
    "plain.txt",
    "with space.txt",
    "ünïcødé ñame.txt",
    "日本語/ファイル.bin",
    "deep/er/still/x y.dat",
    "emoji 🎞.txt",
]


def tree(root: Path, names: list[str] = NAMES, size: int = 3000) -> dict[str, bytes]:
    """Files with distinct contents and old, distinct mtimes; returns rel -> content."""
    out = {}
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (f"{name}\n".encode() * (size // len(name) + 1))[: size + i]
        path.write_bytes(data)
        os.utime(
            path, ns=(1_600_000_000_000_000_000 + i * 1_000_003, 1_600_000_000_123_456_789 + i * 1_000_003)
        )
        out[name] = data
    return out


def contents(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def stamps(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


async def run(eng: Engine, payload: dict[str, Any]) -> Any:
    res = await eng.submit("files.copy", payload)
    return await eng.wait(res.id, timeout=60)


# -- copy ----------------------------------------------------------------------------------


async def test_given_tree_with_unicode_and_spaces_when_copied_then_contents_times_and_modes_match(
    eng: Engine, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = tree(src)
    os.chmod(src / "plain.txt", 0o640)
    os.chmod(src / "with space.txt", 0o755)
    os.chmod(src / "deep" / "er", 0o750)
    os.symlink("plain.txt", src / "link to plain")
    rec = await run(eng, {"source": str(src), "destination": str(dst)})
    assert rec.state == TaskState.COMPLETED, rec.error
    assert contents(dst) == want
    for name in NAMES:
        s, d = (src / name).stat(), (dst / name).stat()
        assert (d.st_mtime_ns, stat.S_IMODE(d.st_mode)) == (s.st_mtime_ns, stat.S_IMODE(s.st_mode)), name
    assert stat.S_IMODE((dst / "deep" / "er").stat().st_mode) == 0o750
    assert (dst / "deep" / "er").stat().st_mtime_ns == (src / "deep" / "er").stat().st_mtime_ns
    assert os.readlink(dst / "link to plain") == "plain.txt"
    assert rec.result["copied"] == len(NAMES) + 1 and rec.result["bytes"] == sum(map(len, want.values()))
    assert rec.bytes_done == rec.bytes_total == sum(map(len, want.values()))  # progress in bytes
    assert rec.progress_message == f"{len(NAMES) + 1} of {len(NAMES) + 1} items"  # and in items


async def test_given_verify_then_every_copy_is_read_back(eng: Engine, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = tree(src, size=200_000)
    rec = await run(eng, {"source": str(src), "destination": str(dst), "verify": True})
    assert rec.state == TaskState.COMPLETED, rec.error
    assert rec.result["verified"] == len(NAMES) and contents(dst) == want


async def test_given_single_file_source_then_it_is_copied_into_the_destination_folder(
    eng: Engine, tmp_path: Path
) -> None:
    tree(tmp_path / "src")
    rec = await run(
        eng, {"source": str(tmp_path / "src" / "with space.txt"), "destination": str(tmp_path / "d")}
    )
    assert rec.state == TaskState.COMPLETED, rec.error
    assert (tmp_path / "d" / "with space.txt").read_bytes() == (
        tmp_path / "src" / "with space.txt"
    ).read_bytes()


# -- sync and dry run -------------------------------------------------------------------


async def test_given_synced_tree_when_nothing_changed_then_nothing_is_written_and_changes_are_found(
    eng: Engine, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    tree(src)
    first = await run(eng, {"source": str(src), "destination": str(dst), "mode": "sync"})
    assert first.result["copied"] == len(NAMES)
    before = stamps(dst)
    again = await run(eng, {"source": str(src), "destination": str(dst), "mode": "sync"})
    assert again.result["copied"] == 0 and again.result["unchanged"] == len(NAMES)
    assert stamps(dst) == before
    (src / "plain.txt").write_text("changed, and longer than before " * 200)
    (src / "new file.txt").write_text("new")
    (dst / "stale.txt").write_text("only in the destination")
    dry = await run(eng, {"source": str(src), "destination": str(dst), "mode": "sync", "delete": True,
                          "dry_run": True})  # fmt: skip
    assert dry.state == TaskState.COMPLETED
    assert dry.result["would_copy"] == ["new file.txt"] and dry.result["would_update"] == ["plain.txt"]
    assert dry.result["would_delete"] == ["stale.txt"] and dry.result["unchanged"] == len(NAMES) - 1
    assert not (dst / "new file.txt").exists() and (dst / "stale.txt").exists()  # a dry run changes nothing
    done = await run(eng, {"source": str(src), "destination": str(dst), "mode": "sync", "delete": True})
    assert done.result["copied"] == 2 and done.result["deleted"] == 1
    assert contents(dst) == contents(src)
    assert stamps(dst)["with space.txt"] == before["with space.txt"]


async def test_given_sync_without_delete_then_extra_destination_files_stay(
    eng: Engine, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    tree(src, NAMES[:2])
    dst.mkdir()
    (dst / "mine.txt").write_text("keep")
    rec = await run(eng, {"source": str(src), "destination": str(dst), "mode": "sync"})
    assert rec.result["deleted"] == 0 and (dst / "mine.txt").read_text() == "keep"


# -- move -----------------------------------------------------------------------------------


async def test_given_move_to_a_new_folder_then_the_tree_is_renamed_whole(eng: Engine, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "moved" / "here"
    want = tree(src)
    rec = await run(eng, {"source": str(src), "destination": str(dst), "mode": "move"})
    assert rec.state == TaskState.COMPLETED, rec.error
    assert rec.result["renamed"] is True and contents(dst) == want and not src.exists()


async def test_given_move_into_a_folder_with_files_then_files_move_and_source_folders_go(
    eng: Engine, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = tree(src)
    dst.mkdir()
    (dst / "already.txt").write_text("here before")
    rec = await run(eng, {"source": str(src), "destination": str(dst), "mode": "move", "verify": True})
    assert rec.state == TaskState.COMPLETED, rec.error
    assert {k: v for k, v in contents(dst).items() if k != "already.txt"} == want
    assert not src.exists()


# -- what cannot be copied -------------------------------------------------------------------


async def test_given_fifo_in_the_tree_then_it_is_skipped_and_listed_without_blocking(
    eng: Engine, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = tree(src, NAMES[:3])
    os.mkfifo(src / "a pipe")
    rec = await run(eng, {"source": str(src), "destination": str(dst)})
    assert rec.state == TaskState.COMPLETED, rec.error
    assert rec.result["skipped_special"] == ["a pipe"] and contents(dst) == want
    assert not (dst / "a pipe").exists()


async def test_given_a_folder_where_a_file_is_expected_then_that_file_fails_and_the_rest_is_copied(
    eng: Engine, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = tree(src, NAMES[:3])
    (dst / "with space.txt").mkdir(parents=True)
    (dst / "with space.txt" / "inside").write_text("x")
    rec = await run(eng, {"source": str(src), "destination": str(dst)})
    assert rec.state == TaskState.FAILED and rec.attempt == 1  # permanent: a retry cannot fix it
    assert "1 item could not be copied" in (rec.error or "") and "with space.txt" in (rec.error or "")
    assert (dst / "plain.txt").read_bytes() == want["plain.txt"]
    assert (dst / "ünïcødé ñame.txt").read_bytes() == want["ünïcødé ñame.txt"]
    assert any(line.level == "error" and "with space.txt" in line.message for line in eng.logs(rec.id))
    assert not [p for p in dst.iterdir() if p.name.startswith(".")]  # no partial files left


def test_given_unreadable_file_then_it_is_reported_and_the_others_are_copied(tmp_path: Path) -> None:
    """chmod 000 stops reads only without CAP_DAC_OVERRIDE: as root the task runs in a
    process started by `setpriv` without it (a real EACCES, not a simulation)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = tree(src, NAMES[:3])
    os.chmod(src / "with space.txt", 0)
    os.chmod(src, 0o755)
    cmd = [sys.executable, "-m", "tests.jobs.run_kind", str(tmp_path / "t.db"), "files.copy",
           json.dumps({"source": str(src), "destination": str(dst)})]  # fmt: skip
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux setpriv: mode 000 cannot stop root")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        out["state"] == "failed" and "Permission denied" in out["error"] and "with space.txt" in out["error"]
    )
    assert (dst / "plain.txt").read_bytes() == want["plain.txt"]
    assert (dst / "ünïcødé ñame.txt").read_bytes() == want["ünïcødé ñame.txt"]
    assert not (dst / "with space.txt").exists()
    assert any(line.startswith("error: with space.txt") for line in out["logs"])


# -- payload checks ---------------------------------------------------------------------------


async def test_given_bad_payloads_then_the_field_is_named(eng: Engine, tmp_path: Path) -> None:
    src = tmp_path / "src"
    tree(src, NAMES[:1])
    with pytest.raises(InvalidSubmission, match="mode"):
        await eng.submit("files.copy", {"source": str(src), "destination": "/tmp/x", "mode": "mirror"})
    with pytest.raises(InvalidSubmission, match="destination"):
        await eng.submit("files.copy", {"source": str(src)})
    cases = {
        "source: no such file or folder": {"source": str(tmp_path / "nope"), "destination": str(tmp_path / "d")},
        "destination: is inside the source": {"source": str(src), "destination": str(src / "sub")},
        "destination: is a file": {"source": str(src), "destination": str(src / "plain.txt")},
        "delete: applies to mode 'sync' only": {"source": str(src), "destination": str(tmp_path / "d"),
                                                "delete": True},
        "source: must be an absolute path": {"source": "src", "destination": str(tmp_path / "d")},
    }  # fmt: skip
    for message, payload in cases.items():
        with pytest.raises(InvalidSubmission, match=f"^{message}"):
            files.validate(payload)
        with pytest.raises(InvalidSubmission, match=f"^{message}"):  # refused at submit
            await eng.submit("files.copy", payload)
    # A source that goes away between submit and run fails for good with the same words.
    gone = tmp_path / "gone"
    tree(gone, NAMES[:1])
    await eng.hold()
    res = await eng.submit("files.copy", {"source": str(gone), "destination": str(tmp_path / "d2")})
    shutil.rmtree(gone)
    await eng.release()
    rec = await eng.wait(res.id, timeout=30)
    assert rec.state == TaskState.FAILED and rec.attempt == 1
    assert (rec.error or "").startswith("source: no such file or folder")


# -- resuming ---------------------------------------------------------------------------------


class FakeCtx:
    """A plain ctx that reports an interruption once `stop_after` files exist in `watch`
    (checked between files and between chunks, as the engine's flag would be seen)."""

    def __init__(
        self, resume_data: Any = None, watch: Path | None = None, stop_after: int | None = None
    ) -> None:
        self.id, self.attempt, self.resume_data = 1, 1, resume_data
        self.watch, self.stop_after = watch, stop_after
        self.io = 0
        self.checkpoints: list[Any] = []
        self.logs: list[str] = []
        self.progress_calls: list[tuple[Any, ...]] = []

    @property
    def interrupted(self) -> bool:
        if self.stop_after is None or self.watch is None or not self.watch.exists():
            return False
        return sum(1 for p in self.watch.iterdir() if p.is_file()) >= self.stop_after

    def record_io(self, read: int = 0, written: int = 0, sent: int = 0, received: int = 0) -> None:
        self.io += written

    def progress(
        self, fraction: Any = None, message: Any = None, done: Any = None, total: Any = None
    ) -> None:
        self.progress_calls.append((fraction, message, done, total))

    def log(self, message: str, level: str = "info") -> None:
        self.logs.append(message)

    def checkpoint(self, data: Any) -> None:
        json.dumps(data)
        self.checkpoints.append(data)

    def yield_point(self) -> None:
        if self.interrupted:
            raise Interrupted("interrupted")


def test_given_copy_interrupted_half_way_when_resumed_then_finished_files_are_not_copied_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One file after the other (COPY_THREADS = 1): the exact counts; the threaded case
    is the test after this one."""
    monkeypatch.setattr(files, "COPY_THREADS", 1)
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = [f"file {i:02d}.bin" for i in range(20)]
    want = tree(src, names, size=5000)
    payload = {"source": str(src), "destination": str(dst)}
    first = FakeCtx(watch=dst, stop_after=8)
    with pytest.raises(Interrupted):
        files.copy_files(first, payload)  # type: ignore[arg-type]
    saved = first.checkpoints[-1]
    # the 8th file was interrupted as it was being written: removed, it does not count
    assert saved["items"] == 7 and saved["bytes"] == sum(len(want[n]) for n in names[:7])
    done_before = stamps(dst)
    assert sorted(done_before) == names[:7]
    # a file the crash left half-written (no mtime set yet): it must be written again
    (dst / names[8]).write_bytes(want[names[8]][:100])
    second = FakeCtx(resume_data=saved)
    result = files.copy_files(second, payload)  # type: ignore[arg-type]
    assert contents(dst) == want
    after = stamps(dst)
    assert {n: after[n] for n in done_before} == done_before  # not rewritten
    assert second.io == sum(len(want[n]) for n in names[7:])  # only the rest was written
    assert result["copied"] == 20  # counted across both runs
    last = second.progress_calls[-1]
    assert last[2] == last[3] == sum(map(len, want.values()))  # bytes across both runs
    assert any("resuming" in line for line in second.logs)


def finished_files(src: Path, dst: Path) -> list[str]:
    """Files of `dst` that are complete: the source's size and mtime (what a resume skips)."""
    out = []
    for p in dst.rglob("*"):
        if p.is_file():
            a, b = p.stat(), (src / p.relative_to(dst)).stat()
            if (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns):
                out.append(str(p.relative_to(dst)))
    return sorted(out)


def test_given_copying_threads_when_interrupted_then_the_checkpoint_counts_exactly_the_finished_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several files are under way at the interruption: each either finishes (and is
    counted) or is removed; nothing half-written is left, nothing unfinished is counted."""
    monkeypatch.setattr(files, "COPY_THREADS", 4)
    monkeypatch.setattr(files, "CHUNK", 4096)  # many chunks per file: copies are caught half-way
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = [f"d{i % 3}/file {i:02d}.bin" for i in range(60)]
    want = tree(src, names, size=300_000)
    payload = {"source": str(src), "destination": str(dst)}
    first = FakeCtx(watch=dst / "d0", stop_after=8)
    with pytest.raises(Interrupted):
        files.copy_files(first, payload)  # type: ignore[arg-type]
    saved = first.checkpoints[-1]
    finished = finished_files(src, dst)
    assert 0 < len(finished) < len(names)
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == finished  # no partial
    assert saved["items"] == saved["copied"] == len(finished)
    assert saved["bytes"] == sum(len(want[n]) for n in finished)
    done_before = stamps(dst)
    second = FakeCtx(resume_data=saved)
    result = files.copy_files(second, payload)  # type: ignore[arg-type]
    assert contents(dst) == want
    assert {n: stamps(dst)[n] for n in done_before} == done_before  # not rewritten
    assert second.io == sum(len(want[n]) for n in names if n not in finished)
    assert result["copied"] == len(names)
    last = second.progress_calls[-1]
    assert last[2] == last[3] == sum(map(len, want.values()))


def test_given_copying_threads_when_one_copy_hits_a_disk_error_then_the_run_stops_with_exact_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error that is not about one file (disk full) stops the task (a retry follows):
    copies under way stop and are removed; the checkpoint counts what is complete."""
    monkeypatch.setattr(files, "COPY_THREADS", 4)
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = [f"file {i:02d}.bin" for i in range(40)]
    want = tree(src, names, size=100_000)
    real = files._Copier.file

    def full_at_20(self: Any, s: str, d: str, *args: Any, **kwargs: Any) -> None:
        if s.endswith("file 20.bin"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, s, d, *args, **kwargs)

    monkeypatch.setattr(files._Copier, "file", full_at_20)
    ctx = FakeCtx()
    with pytest.raises(OSError, match="No space left") as caught:
        files.copy_files(ctx, {"source": str(src), "destination": str(dst)})  # type: ignore[arg-type]
    assert caught.value.errno == errno.ENOSPC
    saved = ctx.checkpoints[-1]
    finished = finished_files(src, dst)
    assert names[:20] == finished[:20] and "file 20.bin" not in finished
    assert sorted(p.name for p in dst.iterdir()) == finished  # nothing partial
    assert saved["items"] == len(finished) and saved["bytes"] == sum(len(want[n]) for n in finished)


def test_given_copying_threads_then_failures_are_reported_in_step_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "COPY_THREADS", 4)
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = [f"file {i:02d}.bin" for i in range(30)]
    want = tree(src, names, size=50_000)
    for n in ("file 05.bin", "file 17.bin", "file 18.bin"):
        (dst / n).mkdir(parents=True)  # a folder where the file goes
        (dst / n / "inside").write_text("x")
    ctx = FakeCtx()
    with pytest.raises(Permanent, match="3 items could not be copied"):
        files.copy_files(ctx, {"source": str(src), "destination": str(dst)})  # type: ignore[arg-type]
    assert [line.split(":")[0] for line in ctx.logs] == ["file 05.bin", "file 17.bin", "file 18.bin"]
    ok = [n for n in names if n not in ("file 05.bin", "file 17.bin", "file 18.bin")]
    assert {n: (dst / n).read_bytes() for n in ok} == {n: want[n] for n in ok}


async def test_given_running_copy_when_paused_and_resumed_then_it_completes_from_its_checkpoint(
    eng: Engine, tmp_path: Path
) -> None:
    """The engine path of the same: a pause interrupts the thread cooperatively (its
    checkpoint is kept), a resume finishes the copy."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    want = tree(src, [f"f{i:04d}" for i in range(400)], size=20_000)
    events = eng.events()
    res = await eng.submit("files.copy", {"source": str(src), "destination": str(dst), "verify": True})
    async for ev in events:
        if ev.task_id == res.id and ev.kind in ("started", "progress"):
            break
    await eng.pause(res.id)
    rec = eng.get(res.id)
    assert rec is not None
    if rec.state != TaskState.COMPLETED:  # it may have finished before the pause reached it
        async for ev in events:
            if ev.task_id == res.id and ev.kind in ("paused", "completed"):
                break
        await eng.resume(res.id)
    final = await eng.wait(res.id, timeout=60)
    assert final.state == TaskState.COMPLETED, final.error
    assert contents(dst) == want


async def test_given_a_file_name_that_is_not_utf8_then_it_is_copied_and_shown_readably(
    eng: Engine, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    tree(src, NAMES[:1])
    Path(os.fsdecode(os.fsencode(str(src)) + b"/caf\xe9 menu.txt")).write_bytes(b"latin-1 name")
    dry = await run(eng, {"source": str(src), "destination": str(dst), "dry_run": True})
    assert "caf\ufffd menu.txt" in dry.result["would_copy"]
    rec = await run(eng, {"source": str(src), "destination": str(dst)})
    assert rec.state == TaskState.COMPLETED, rec.error
    assert Path(os.fsdecode(os.fsencode(str(dst)) + b"/caf\xe9 menu.txt")).read_bytes() == b"latin-1 name"
