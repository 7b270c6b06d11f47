"""`make screenshots`: the window with realistic data, the three panes, light and dark, saved
as PNGs (docs/screenshots/ by default). Runs the real app code on a temporary profile;
the photo and upload jobs are stand-ins (gated handlers) until their kinds exist.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.desktop.screenshots OUTDIR
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import qasync
from PySide6.QtWidgets import QApplication

from core import Engine, EngineConfig, Priority, RetryPolicy, Submission, TaskContext
from desktop import theme
from desktop.app import App, Options, configure_application
from desktop.profile import Profile

GATE = asyncio.Event()


async def transfer(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    total = int(payload["size"])
    rate = float(payload["rate"])
    done = int(payload.get("start", 0))
    while not GATE.is_set():
        await ctx.yield_point()
        done = min(total - 1, done + int(rate * 0.1 * random.uniform(0.85, 1.15)))
        ctx.progress(done=done, total=total)
        await asyncio.sleep(0.1)
    return {"bytes": total}


async def finish_fast(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    ctx.log("resized to 1600×1200, 412 kB")
    await asyncio.sleep(0.05)
    if payload.get("fail"):
        raise RuntimeError(str(payload["fail"]))
    return {"output_dir": "/home/ana/Pictures/web"}


async def resize_folder(ctx: TaskContext, payload: dict[str, Any]) -> None:
    await ctx.spawn_children(
        [
            Submission("resize.image", {"size": 4_000_000, "rate": 900_000 + i * 150_000}, label=name)
            for i, name in enumerate(payload["files"])
        ]
    )


def setup(engine: Engine) -> None:
    engine.register("upload.s3", transfer, retry=RetryPolicy.none())
    engine.register("resize.image", transfer, retry=RetryPolicy.none())
    engine.register("resize.folder", resize_folder)
    engine.register("resize.photo", finish_fast, retry=RetryPolicy.fixed(2, 0.01))
    engine.register("upload.retry", finish_fast, retry=RetryPolicy.fixed(4, 95.0))


async def populate(engine: Engine) -> None:
    s = engine.submit
    for i, name in enumerate(
        ("IMG_2031.jpg", "IMG_2032.jpg", "IMG_2033.jpg", "IMG_2034.jpg", "IMG_2035.jpg")
    ):
        await s("resize.photo", {"n": i}, label=name, group="resize")
    await s("resize.photo", {"fail": "cannot identify image file 'scan_0007.tif'"}, label="scan_0007.tif")
    await asyncio.sleep(1.0)
    await s("upload.s3", {"size": 48_000_000, "rate": 1_150_000, "start": 9_000_000},
            label="holiday-video.mp4", group="s3://photos-bucket")  # fmt: skip
    await s("upload.s3", {"size": 210_000_000, "rate": 2_400_000, "start": 60_000_000},
            label="raw-archive-2025.zip", group="s3://photos-bucket", priority=Priority.HIGH)  # fmt: skip
    await s("resize.folder", {"files": ["DSC_0101.NEF", "DSC_0102.NEF", "DSC_0103.NEF", "DSC_0104.NEF"]},
            label="Beach 2025 (4 photos)")  # fmt: skip
    waiting = await s(
        "upload.s3", {"size": 3_000_000, "rate": 500_000}, label="portfolio.pdf", group="webdav://nas"
    )
    await s(
        "upload.s3", {"size": 8_000_000, "rate": 500_000}, label="IMG_1999.jpg", group="s3://photos-bucket"
    )
    await s(
        "upload.s3", {"size": 8_000_000, "rate": 500_000}, label="IMG_2000.jpg", group="s3://photos-bucket"
    )
    await s("upload.s3", {"size": 8_000_000, "rate": 500_000}, label="family.jpg", priority=Priority.LOW)
    blocked = await s("upload.s3", {"size": 1_000_000, "rate": 500_000}, label="Publish gallery",
                      depends_on=[waiting.id])  # fmt: skip
    await s("upload.retry", {"fail": "connection reset by peer"}, label="sync-notes.md", group="webdav://nas")
    await engine.pause(blocked.id - 3)
    await add_schedules(engine)
    await asyncio.sleep(4.5)  # speeds and ETAs settle


async def add_schedules(engine: Engine) -> None:
    sch = engine.schedules
    await sch.add("resize.photo", {"n": 0}, name="Resize new photos", cron="0 9 * * 1-5")
    camera = await sch.add(
        "upload.s3", {"size": 1_000_000, "rate": 500_000}, name="Upload camera folder", cron="30 22 * * *"
    )
    await sch.add("resize.photo", {"n": 1}, name="Tidy downloads", every=900)
    backup = await sch.add("resize.photo", {"n": 2}, name="Nightly backup", cron="0 2 * * *")
    await sch.add("upload.retry", {"fail": "host unreachable"}, name="Sync notes", cron="0 */2 * * *")
    await sch.run_now(backup)
    await sch.pause(camera)
    await engine.set_bandwidth_schedule([("mon-fri", "09:00", "17:00", 200_000)])


async def shoot(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    qapp = QApplication.instance()
    assert isinstance(qapp, QApplication)
    with tempfile.TemporaryDirectory(prefix="taskdeck-shots-") as d:
        profile_dir = Path(d)
        app = App(qapp, Options(profile=profile_dir, config=EngineConfig(max_concurrency=3), setup=setup),
                  Profile.create(profile_dir))  # fmt: skip
        assert await app.open()
        w = app.window
        assert w is not None and app.opened is not None
        w.resize(1480, 860)
        engine = app.opened.backend
        assert isinstance(engine, Engine)
        await populate(engine)
        await engine.set_bandwidth_limit(500_000)  # the status bar's toggle, in its accent colour
        running = [
            r for r in w.queue_model.records() if r.state.value == "running" and r.name.endswith(".zip")
        ]
        if running:
            w.queue_pane.select_task(running[0].id)
        parent = next((r for r in w.queue_model.records() if r.kind == "resize.folder"), None)
        if parent is not None:
            w.queue_pane.view.expand(w.queue_pane.proxy.mapFromSource(w.queue_model.index_of(parent.id)))
        for name in ("light", "dark"):
            theme.apply_theme(qapp, name)
            for pane, title in ((0, "queue"), (1, "history"), (2, "schedules")):
                w.show_pane(pane)
                if pane == 1:
                    w.history_pane.select_row(1)
                if pane == 2:
                    sp = w.schedules_pane
                    backup = next((s.id for s in sp.model_schedules() if s.name == "Nightly backup"), None)
                    if backup is not None:
                        sp.select_schedule(backup)
                        await asyncio.sleep(0.3)  # its runs load
                        sp.runs_view.selectRow(0)
                await asyncio.sleep(0.6)
                path = out / f"{title}-{name}.png"
                w.grab().save(str(path))
                print(path)
            w.show_pane(0)
            w.resources_button.open_view()
            view = w.resources_button.view
            assert view is not None
            await asyncio.sleep(1.2)  # a sample or two for the sparklines
            path = out / f"resources-{name}.png"
            view.grab().save(str(path))
            print(path)
            view.hide()
        GATE.set()
        await app.shutdown()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    qapp = QApplication(sys.argv[:1])
    configure_application(qapp)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(shoot(out))


if __name__ == "__main__":
    main()
