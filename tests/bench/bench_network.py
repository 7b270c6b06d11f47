"""Network jobs (issue #9): upload.s3 against boto3's own TransferManager, bandwidth limits,
and the speed/ETA a throttled upload shows.

Server: moto's S3 in server mode, in a process of its own on 127.0.0.1, counting the
requests it answers (tests/net/servers.py). Same run, same data, same server:

- files: 1 GiB in 20 files (64 MiB in 20 with --quick); one: one 1 GiB file (64 MiB).
  Taskdeck: one upload.s3 task (EngineConfig(max_concurrency=10), 8 MiB parts, one child
  per part) from submit to completed. Peer: s3transfer's TransferManager, what boto3's
  upload_file runs, with its defaults (8 MiB threshold and parts, 10 threads), all files
  submitted at once, until every future is done. Both clients are warmed up first.
  Targets: peer seconds / Taskdeck seconds >= 0.9; Taskdeck's requests <= the peer's.
- bandwidth: a global limit of 2 MB/s (and, separately, a task's own bandwidth_limit of
  2 MB/s): the bytes that reached the server through a counting proxy over 20 s (5 s with
  --quick) after a 3 s warm-up. Target: within ±10% of the limit.
- eta (ux Q-03): one 30 MB upload (12 MB with --quick) through the proxy throttled to
  1 MB/s; the task's speed and ETA sampled every second from 3 s on. Figures: when the
  ETA first appears, the largest ratio between consecutive ETA samples (target <= 2), and
  the median speed over the second half (on loopback the socket's send buffer lets the
  first ~4 MB leave at once: the speed starts high and settles).

The median of 3 runs for the upload figures (1 with --quick).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.bench.common import REPO, emit, median, note, parse_args, ratio, rnd, target, temp_dir

MiB = 1024 * 1024
PART = 8 * MiB
FILES = 20
TOTAL = 1024 * MiB
TOTAL_QUICK = 64 * MiB
CONCURRENCY = 10  # s3transfer's default max_concurrency
BANDWIDTH = 2_000_000.0  # bytes/s
WINDOW, WINDOW_QUICK, WARMUP = 20.0, 5.0, 3.0
THROTTLE = 1_000_000  # bytes/s at the proxy for the ETA figure
ETA_BYTES, ETA_BYTES_QUICK = 30_000_000, 12_000_000
ETA_FROM = 3.0  # seconds: the ETA is judged once there is enough data (ux Q-03)
BUCKET = "bench"


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """`python -m tests.net.servers moto` on 127.0.0.1; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.net.servers", "moto"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            raise RuntimeError(f"the moto server did not start: {line}")
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def requests_at(url: str, clear: bool = False) -> list[tuple[str, int | None, int]]:
    from tests.net.servers import COUNTS_PATH, remote_counts

    if clear:
        req = urllib.request.Request(url + COUNTS_PATH, method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
        return []
    return remote_counts(url)


def s3_client(url: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def make_files(folder: Path, total: int, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    size = total // count
    out = []
    for i in range(count):
        p = folder / f"file{i:02d}.bin"
        with open(p, "wb") as fh:
            left = size
            while left:
                n = min(left, 16 * MiB)
                fh.write(os.urandom(n))
                left -= n
        out.append(p)
    return out


def empty_bucket(client: Any) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])


# -- Taskdeck ---------------------------------------------------------------------------


async def _ours(url: str, inputs: list[Path], prefix: str, db: Path, **extra: Any) -> float:
    from core import Engine, EngineConfig, TaskState
    from core.jobs.net import register_network, submit

    engine = await Engine.open(db, EngineConfig(max_concurrency=CONCURRENCY))
    register_network(engine)
    await engine.start()
    try:
        payload = {"inputs": [str(p) for p in inputs], "bucket": BUCKET, "endpoint_url": url,
                   "credentials": "env", "prefix": prefix, **extra}  # fmt: skip
        t0 = time.perf_counter()
        res = await submit(engine, "upload.s3", payload)
        rec = await engine.wait(res.id, timeout=3600)
        seconds = time.perf_counter() - t0
        if rec.state is not TaskState.COMPLETED:
            raise RuntimeError(f"upload.s3 ended {rec.state}: {rec.error}")
        return seconds
    finally:
        await engine.stop(grace=0)


def ours(url: str, inputs: list[Path], prefix: str, work: Path, **extra: Any) -> float:
    db = work / f"{prefix.strip('/').replace('/', '-')}.db"
    return asyncio.run(_ours(url, inputs, prefix, db, **extra))


def peer(url: str, inputs: list[Path], prefix: str) -> float:
    from boto3.s3.transfer import TransferConfig
    from s3transfer.manager import TransferManager

    client = s3_client(url)
    config = TransferConfig()  # boto3's defaults: 8 MiB threshold and parts, 10 threads
    t0 = time.perf_counter()
    with TransferManager(client, config) as manager:
        futures = [manager.upload(str(p), BUCKET, f"{prefix}{p.name}") for p in inputs]
        for f in futures:
            f.result()
    return time.perf_counter() - t0


def count(url: str) -> int:
    return len(requests_at(url))


def compare(url: str, inputs: list[Path], work: Path, runs: int, label: str) -> dict[str, Any]:
    client = s3_client(url)
    mine, theirs, my_requests, their_requests = [], [], [], []
    for run in range(runs):
        for who in ("taskdeck", "peer") if run % 2 == 0 else ("peer", "taskdeck"):
            empty_bucket(client)
            requests_at(url, clear=True)
            prefix = f"{label}/{who}/{run}/"
            if who == "taskdeck":
                mine.append(ours(url, inputs, prefix, work))
                my_requests.append(count(url))
            else:
                theirs.append(peer(url, inputs, prefix))
                their_requests.append(count(url))
            note(f"{label} run {run + 1}/{runs} {who}: {(mine if who == 'taskdeck' else theirs)[-1]:.2f} s")
    empty_bucket(client)
    size = sum(p.stat().st_size for p in inputs)
    t_mine, t_theirs = median(mine), median(theirs)
    return {
        "files": len(inputs),
        "bytes": size,
        "seconds": rnd(t_mine, 3),
        "peer_seconds": rnd(t_theirs, 3),
        "mb_per_s": rnd(size / t_mine / 1e6),
        "peer_mb_per_s": rnd(size / t_theirs / 1e6),
        "time_ratio": ratio(t_theirs, t_mine),  # >= 1: Taskdeck is faster
        "requests": max(my_requests),
        "peer_requests": min(their_requests),
    }


# -- bandwidth --------------------------------------------------------------------------


async def _bandwidth(url: str, path: Path, db: Path, window: float, per_task: bool) -> dict[str, Any]:
    from core import Engine, EngineConfig
    from core.jobs.net import register_network, submit
    from tests.net.faults import FaultProxy

    proxy = FaultProxy(int(url.rsplit(":", 1)[1])).start()
    engine = await Engine.open(db, EngineConfig(max_concurrency=CONCURRENCY))
    register_network(engine)
    await engine.start()
    try:
        extra: dict[str, Any] = {"bandwidth_limit": BANDWIDTH} if per_task else {}
        if not per_task:
            await engine.set_bandwidth_limit(BANDWIDTH)
        payload = {"inputs": [str(path)], "bucket": BUCKET, "endpoint_url": proxy.url, "credentials": "env",
                   "prefix": f"bw-{per_task}/", **extra}  # fmt: skip
        res = await submit(engine, "upload.s3", payload)
        await asyncio.sleep(WARMUP)
        t0, b0 = time.perf_counter(), proxy.bytes_up
        p0 = engine.get(res.id).bytes_done or 0  # type: ignore[union-attr]
        await asyncio.sleep(window)
        t1, b1 = time.perf_counter(), proxy.bytes_up
        p1 = engine.get(res.id).bytes_done or 0  # type: ignore[union-attr]
        await engine.cancel(res.id)
        rate = (b1 - b0) / (t1 - t0)
        return {
            "limit": BANDWIDTH,
            "seconds": rnd(t1 - t0),
            "measured_bps": round(rate),
            "progress_bps": round((p1 - p0) / (t1 - t0)),
            "error": rnd(rate / BANDWIDTH - 1, 4),
        }
    finally:
        await engine.stop(grace=0)
        proxy.stop()


# -- speed and ETA ----------------------------------------------------------------------


async def _eta(url: str, path: Path, db: Path) -> dict[str, Any]:
    from core import Engine, EngineConfig, TaskState
    from core.jobs.net import register_network, submit
    from tests.net.faults import FaultProxy

    proxy = FaultProxy(int(url.rsplit(":", 1)[1]), rcvbuf=64 * 1024).start()
    proxy.throttle(THROTTLE)
    engine = await Engine.open(db, EngineConfig(max_concurrency=CONCURRENCY))
    register_network(engine)
    await engine.start()
    try:
        payload = {"inputs": [str(path)], "bucket": BUCKET, "endpoint_url": proxy.url, "credentials": "env",
                   "prefix": "eta/", "multipart_threshold": 64 * MiB}  # fmt: skip
        res = await submit(engine, "upload.s3", payload)
        total_eta_seconds = path.stat().st_size / THROTTLE
        t0 = time.perf_counter()
        samples: list[tuple[float, float | None, float | None]] = []
        first_eta: float | None = None
        speeds_late: list[float] = []
        while True:
            await asyncio.sleep(1.0)
            rec = engine.get(res.id)
            assert rec is not None
            if rec.is_terminal:
                if rec.state is not TaskState.COMPLETED:
                    raise RuntimeError(f"upload.s3 ended {rec.state}: {rec.error}")
                break
            if rec.eta is not None and first_eta is None:
                first_eta = time.perf_counter() - t0
            now = time.perf_counter() - t0
            if rec.eta is not None and (rec.bytes_done or 0) < (rec.bytes_total or 0) and now >= ETA_FROM:
                samples.append((now, rec.speed, rec.eta))
            if rec.speed and now >= total_eta_seconds / 2 and (rec.bytes_done or 0) < (rec.bytes_total or 0):
                speeds_late.append(rec.speed)
            if os.environ.get("BENCH_DEBUG"):
                note(f"t={time.perf_counter() - t0:.1f} done={rec.bytes_done} speed={rec.speed} eta={rec.eta} "
                     f"proxy={proxy.bytes_up}")  # fmt: skip
        total = time.perf_counter() - t0
    finally:
        await engine.stop(grace=0)
        proxy.stop()
    etas = [e for _, _, e in samples if e]
    swings = [max(a / b, b / a) for a, b in itertools.pairwise(etas) if a > 0.5 and b > 0.5]
    return {
        "throttle_bps": THROTTLE,
        "bytes": path.stat().st_size,
        "seconds": rnd(total),
        "eta_first_at": rnd(first_eta) if first_eta is not None else None,
        "samples": len(samples),
        "speed_second_half_bps": round(median(speeds_late)) if speeds_late else None,
        "eta_swing_max": rnd(max(swings), 3) if swings else None,
    }


def main() -> None:
    args = parse_args()
    total = TOTAL_QUICK if args.quick else TOTAL
    window = WINDOW_QUICK if args.quick else WINDOW
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true"
    )
    with temp_dir() as d, moto_process() as url:
        work = Path(d)
        note(f"moto at {url}; writing {2 * total / MiB:.0f} MiB of data")
        s3 = s3_client(url)
        s3.create_bucket(Bucket=BUCKET)
        many = make_files(work / "many", total, FILES)
        one = make_files(work / "one", total, 1)
        warm = make_files(work / "warm", MiB, 1)
        ours(url, warm, "warm/", work)  # boto3 client made and cached, kinds loaded
        peer(url, warm, "warm/")
        files = compare(url, many, work, args.runs, "files")
        single = compare(url, one, work, args.runs, "one")
        bw_size = int(BANDWIDTH * (window + WARMUP) * 1.5)
        bw_file = make_files(work / "bw", bw_size, 1)[0]
        note("bandwidth: global limit")
        bw_global = asyncio.run(_bandwidth(url, bw_file, work / "bw-global.db", window, per_task=False))
        note("bandwidth: the task's own limit")
        bw_task = asyncio.run(_bandwidth(url, bw_file, work / "bw-task.db", window, per_task=True))
        note("speed and ETA through a 1 MB/s proxy")
        eta_file = make_files(work / "eta", ETA_BYTES_QUICK if args.quick else ETA_BYTES, 1)[0]
        eta = asyncio.run(_eta(url, eta_file, work / "eta.db"))
    targets = {
        "files_time_ratio": target(files["time_ratio"], ">=", 0.9),
        "files_requests": target(files["requests"], "<=", files["peer_requests"]),
        "one_time_ratio": target(single["time_ratio"], ">=", 0.9),
        "one_requests": target(single["requests"], "<=", single["peer_requests"]),
        "bandwidth_global_error": target(abs(bw_global["error"]), "<=", 0.10),
        "bandwidth_task_error": target(abs(bw_task["error"]), "<=", 0.10),
        "eta_swing_max": target(eta["eta_swing_max"], "<=", 2.0),
    }
    emit(
        "network",
        {
            "upload_files": files,
            "upload_one": single,
            "bandwidth_global": bw_global,
            "bandwidth_task": bw_task,
            "eta": eta,
        },
        targets,
        args,
    )


if __name__ == "__main__":
    main()
