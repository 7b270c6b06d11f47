"""Built-in job kinds (issue #8), side by side with the tools people would otherwise use,
in the same run on the same data.

- resize: 200 generated 12-megapixel JPEGs -> fit in 1600 px, JPEG q85. Taskdeck's
  resize.images (one child per image, worker processes) against a plain Pillow script
  with a process pool of the same size. Target: pillow time / taskdeck time >= 0.9.
- copy: a folder of 5,000 files / 2 GiB. files.copy against `cp -r`.
  Target: cp time / taskdeck time >= 0.8.
- sync with nothing changed: files.copy mode=sync against `rsync -a` (installed by
  `make bench`). Target: rsync time / taskdeck time >= 1.0.

Taskdeck is timed from submit to the task's completion on a started engine; the peers as
processes (their start-up counted, as a user would run them). --quick: 40 images, 1,000
files / 200 MiB, one run each.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tests.bench.common import emit, median, note, parse_args, ratio, rnd, target, temp_dir

IMAGES, IMAGES_QUICK = 200, 40
DISTINCT_IMAGES = 8  # generated; the rest are copies (decoding cost is what matters)
FILES, FILES_QUICK = 5000, 1000
TOTAL_BYTES, TOTAL_BYTES_QUICK = 2 << 30, 200 << 20
BOX = 1600


def workers() -> int:
    return os.cpu_count() or 2


# -- data ----------------------------------------------------------------------------------


def _make_photo(path: str, seed: int) -> None:
    from PIL import Image, ImageDraw

    im = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    draw = ImageDraw.Draw(im)
    for i in range(60):  # some edges and colour, so the JPEG is not trivially flat
        x, y = (seed * 997 + i * 331) % 3800, (seed * 613 + i * 197) % 2800
        draw.rectangle((x, y, x + 200, y + 150), fill=((i * 40) % 256, (seed * 70) % 256, (i * 13) % 256))
    noise = Image.effect_noise((4000, 3000), 25).convert("RGB")
    Image.blend(im, noise, 0.2).save(path, "JPEG", quality=90)


def make_photos(folder: str, n: int) -> None:
    os.makedirs(folder, exist_ok=True)
    distinct = [os.path.join(folder, f"photo_{i:04d}.jpg") for i in range(min(n, DISTINCT_IMAGES))]
    with ProcessPoolExecutor(workers()) as pool:
        list(pool.map(_make_photo, distinct, range(len(distinct))))
    for i in range(len(distinct), n):
        shutil.copyfile(distinct[i % len(distinct)], os.path.join(folder, f"photo_{i:04d}.jpg"))


def make_tree(folder: str, files: int, total: int) -> None:
    """`files` files of varied sizes (mean total/files) in 50 folders of 2 levels."""
    each = total // files
    block = os.urandom(1 << 20)
    for i in range(files):
        sub = os.path.join(folder, f"dir {i % 10}", f"sub {i % 50 // 10}")
        os.makedirs(sub, exist_ok=True)
        size = max(1, int(each * (0.25 + 1.5 * ((i * 7919) % 1000) / 1000)))
        with open(os.path.join(sub, f"file {i:05d}.bin"), "wb") as f:
            f.write(i.to_bytes(8, "little"))  # no two files alike
            left = size - 8
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)


# -- peers ---------------------------------------------------------------------------------


def _pillow_one(job: tuple[str, str]) -> None:
    from PIL import Image, ImageOps

    src, dst = job
    with Image.open(src) as im:
        im.thumbnail((BOX, BOX))
        out = ImageOps.exif_transpose(im)
        assert out is not None
        out.save(dst, "JPEG", quality=85)


def pillow_seconds(src: str, out: str) -> float:
    os.makedirs(out, exist_ok=True)
    jobs = [(os.path.join(src, n), os.path.join(out, n)) for n in sorted(os.listdir(src))]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers()) as pool:
        list(pool.map(_pillow_one, jobs))
    return time.perf_counter() - t0


def process_seconds(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


# -- taskdeck ------------------------------------------------------------------------------


async def taskdeck_seconds(db: str, kind: str, payload: dict[str, Any]) -> tuple[float, Any]:
    from core import Engine, EngineConfig, TaskState
    from core.jobs import register_builtin

    engine = await Engine.open(db, EngineConfig(max_concurrency=4, process_workers=workers()))
    try:
        register_builtin(engine)
        await engine.start()
        t0 = time.perf_counter()
        res = await engine.submit(kind, payload, fail_fast=False)
        rec = await engine.wait(res.id, timeout=3600)
        elapsed = time.perf_counter() - t0
    finally:
        await engine.stop(grace=0)
    if rec.state != TaskState.COMPLETED:
        raise RuntimeError(f"{kind} ended {rec.state}: {rec.error}")
    return elapsed, rec.result


def fresh(path: str) -> str:
    shutil.rmtree(path, ignore_errors=True)
    os.sync()  # the previous run's writeback does not land in this run
    return path


def main() -> None:
    args = parse_args()
    n_images = IMAGES_QUICK if args.quick else IMAGES
    n_files = FILES_QUICK if args.quick else FILES
    n_bytes = TOTAL_BYTES_QUICK if args.quick else TOTAL_BYTES
    figures: dict[str, Any] = {"images": n_images, "workers": workers(), "files": n_files, "bytes": n_bytes}
    with temp_dir() as d:
        photos = os.path.join(d, "photos")
        note(f"generating {n_images} 12-megapixel JPEGs")
        make_photos(photos, n_images)
        td_resize, pil_resize = [], []
        for i in range(args.runs):
            pil_resize.append(pillow_seconds(photos, fresh(os.path.join(d, "pil"))))
            payload = {"inputs": [photos], "output_dir": fresh(os.path.join(d, "td")), "max_width": BOX,
                       "max_height": BOX, "format": "jpeg", "quality": 85}  # fmt: skip
            secs, result = asyncio.run(
                taskdeck_seconds(os.path.join(d, f"resize{i}.db"), "resize.images", payload)
            )
            if result["resized"] != n_images:
                raise RuntimeError(f"resize.images resized {result['resized']} of {n_images}")
            td_resize.append(secs)
            note(f"resize run {i + 1}: taskdeck {secs:.2f} s, pillow pool {pil_resize[-1]:.2f} s")
        shutil.rmtree(photos)

        tree = os.path.join(d, "tree")
        note(f"generating {n_files} files, {n_bytes >> 20} MiB")
        make_tree(tree, n_files, n_bytes)
        td_copy, cp_copy = [], []
        for i in range(args.runs):  # alternate who goes first: page cache and writeback
            if i % 2:
                cp_copy.append(process_seconds(["cp", "-r", tree, fresh(os.path.join(d, "cp"))]))
            payload = {"source": tree, "destination": fresh(os.path.join(d, "copy"))}
            secs, _ = asyncio.run(taskdeck_seconds(os.path.join(d, f"copy{i}.db"), "files.copy", payload))
            td_copy.append(secs)
            if not i % 2:
                cp_copy.append(process_seconds(["cp", "-r", tree, fresh(os.path.join(d, "cp"))]))
            note(f"copy run {i + 1}: taskdeck {secs:.2f} s, cp -r {cp_copy[-1]:.2f} s")
        shutil.rmtree(os.path.join(d, "cp"), ignore_errors=True)

        rsync = shutil.which("rsync")
        td_sync, rs_sync = [], []
        synced = os.path.join(d, "copy")  # written by files.copy: times preserved
        if rsync is None:
            note("rsync is not installed (make bench installs it): no sync figure")
        else:
            mirror = os.path.join(d, "rsync")
            subprocess.run([rsync, "-a", tree + "/", mirror + "/"], check=True)
            for i in range(args.runs):
                rs_sync.append(process_seconds([rsync, "-a", tree + "/", mirror + "/"]))
                payload = {"source": tree, "destination": synced, "mode": "sync"}
                secs, result = asyncio.run(
                    taskdeck_seconds(os.path.join(d, f"sync{i}.db"), "files.copy", payload)
                )
                if result["copied"]:
                    raise RuntimeError(f"sync of an unchanged tree copied {result['copied']} files")
                td_sync.append(secs)
                note(f"sync run {i + 1}: taskdeck {secs:.3f} s, rsync -a {rs_sync[-1]:.3f} s")

    resize_ratio = ratio(median(pil_resize), median(td_resize))
    copy_ratio = ratio(median(cp_copy), median(td_copy))
    sync_ratio = ratio(median(rs_sync), median(td_sync)) if td_sync else None
    figures.update(
        resize_taskdeck_s=rnd(median(td_resize)),
        resize_pillow_pool_s=rnd(median(pil_resize)),
        resize_images_per_s=rnd(n_images / median(td_resize)),
        resize_ratio=resize_ratio,
        copy_taskdeck_s=rnd(median(td_copy)),
        copy_cp_s=rnd(median(cp_copy)),
        copy_mib_per_s=rnd((n_bytes >> 20) / median(td_copy)),
        copy_ratio=copy_ratio,
        sync_taskdeck_s=rnd(median(td_sync)) if td_sync else None,
        sync_rsync_s=rnd(median(rs_sync)) if rs_sync else None,
        sync_ratio=sync_ratio,
    )
    targets = {
        "resize_vs_pillow_pool": target(resize_ratio, ">=", 0.9),
        "copy_vs_cp": target(copy_ratio, ">=", 0.8),
        "sync_unchanged_vs_rsync": target(sync_ratio, ">=", 1.0),
    }
    emit("jobs", figures, targets, args)


if __name__ == "__main__":
    sys.exit(main())
