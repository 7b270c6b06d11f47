"""ux §4 scenarios of the built-in kinds, driven through the window: real photos resized
by the real kind, a real multipart upload to moto behind the fault proxy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QApplication

from desktop.dialogs.local_jobs import ResizeDialog
from desktop.dialogs.net_jobs import UploadDialog
from desktop.drops import drop_action, remember_drop_action
from desktop.models.roles import HistoryColumn, QueueColumn
from tests.desktop.conftest import Harness
from tests.desktop.jobs.conftest import photo
from tests.desktop.jobs.test_dialogs import WEB, open_dialog
from tests.net.faults import FaultProxy
from tests.net.servers import MotoServer


def no_modal() -> bool:
    return not [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.isModal()]


def hold(gui: Harness) -> None:
    """Stop after current: nothing starts, so new rows stay Queued for the assertions."""
    gui.window.action_hold.trigger()
    gui.wait(lambda: gui.engine.is_held)


def test_Q02_photos_dropped_with_a_preset_chosen_become_queued_rows_named_with_the_preset(
    gui: Harness, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    files = [photo(tmp_path / "drop" / n, (1200, 900)) for n in ("a.jpg", "b.jpg", "c.jpg")]
    first = photo(tmp_path / "first.jpg", (2000, 1500))
    hold(gui)
    # the choice is made once, in the Resize dialog: "Resize files dropped … with this preset"
    d = open_dialog(gui, "resize.images", ResizeDialog)
    d.inputs.add([str(first)])
    d.output.setText(str(out))
    d.choose_preset(WEB)
    d.for_drops.setChecked(True)
    d.ok.click()
    gui.wait(lambda: len(gui.window.queue_model.top_level_ids()) == 1)
    gui.window.queue_model.files_dropped.emit([str(f) for f in files])  # what a drop does
    model = gui.window.queue_model
    gui.wait(lambda: len(model.top_level_ids()) == 4)
    rows = gui.window.queue_pane.visible_rows()[1:]
    assert [r[QueueColumn.NAME] for r in rows] == [f"{n} — {WEB}" for n in ("a.jpg", "b.jpg", "c.jpg")]
    assert all(r[QueueColumn.STATE].startswith("Queued") for r in rows), rows
    assert all(r[QueueColumn.KIND] == "resize.images" for r in rows)
    gui.wait(lambda: gui.window.counts_label.text() == "0 running · 4 queued")
    assert no_modal()
    gui.window.action_hold.trigger()  # resume: they resize for real
    for tid in model.top_level_ids():
        gui.wait_text(tid, "Completed")
    for n in ("a.jpg", "b.jpg", "c.jpg", "first.jpg"):
        with Image.open(out / n) as im:
            assert max(im.size) == 1600 if n == "first.jpg" else im.size == (1200, 900)
    # the choice shows when the dialog opens again; unticking it ends it
    d = open_dialog(gui, "resize.images", ResizeDialog)
    assert d.preset_name() == WEB and d.for_drops.isChecked()
    d.for_drops.setChecked(False)
    d.inputs.add([str(first)])
    d.overwrite.setChecked(True)
    d.ok.click()
    gui.wait(lambda: drop_action(gui.window.settings) is None)


def test_Q21_the_same_photo_dropped_twice_is_one_row_and_a_toast_not_a_dialog(
    gui: Harness, photos: dict[str, Path], tmp_path: Path
) -> None:
    remember_drop_action(gui.window.settings, "resize", WEB)
    gui.window.settings.setValue("resizeOutputDir", str(tmp_path / "out"))
    hold(gui)
    model = gui.window.queue_model
    model.files_dropped.emit([str(photos["small"])])
    gui.wait(lambda: len(model.top_level_ids()) == 1)
    model.files_dropped.emit([str(photos["small"])])
    gui.wait(lambda: gui.window.toast.text() == "“small.jpg” is already in the queue")
    assert len(model.top_level_ids()) == 1
    assert no_modal()
    gui.wait(lambda: gui.window.toast.text() == "")  # it goes by itself


def test_Q18_open_output_folder_on_a_finished_resize_calls_the_file_manager_with_its_folder(
    gui: Harness, photos: dict[str, Path], tmp_path: Path, xdg_open: Path
) -> None:
    out = tmp_path / "resized"
    log = xdg_open
    remember_drop_action(gui.window.settings, "resize", WEB)
    gui.window.settings.setValue("resizeOutputDir", str(out))
    gui.window.queue_model.files_dropped.emit([str(photos["small"])])
    model = gui.window.queue_model
    gui.wait(lambda: len(model.top_level_ids()) == 1)
    tid = model.top_level_ids()[0]
    gui.wait_text(tid, "Completed")
    pane = gui.window.queue_pane
    action = pane.actions_by_name["open_output"]
    for column in (QueueColumn.NAME, QueueColumn.SPEED, QueueColumn.ADDED):  # anywhere on the row
        pane.view.clearSelection()
        index = pane.proxy.mapFromSource(model.index_of(tid, column))
        pos = pane.view.visualRect(index).center()
        pane.view.contextMenuEvent(
            QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, pane.view.viewport().mapToGlobal(pos))
        )
        gui.wait(lambda: pane.view.menu is not None and pane.view.menu.isVisible())
        assert action in pane.view.menu.actions()
        gui.wait(action.isEnabled)
        pane.view.menu.hide()
    action.trigger()
    gui.wait(lambda: log.exists() and log.read_text().strip() != "")
    assert log.read_text().splitlines() == [QUrl.fromLocalFile(str(out)).toString()]  # file:///…/resized


def test_Q23_web_preset_makes_1600x1200_of_4000x3000_keeps_800x600_and_history_shows_size_and_time(
    gui: Harness, photos: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "web"
    d = open_dialog(gui, "resize.images", ResizeDialog)
    d.inputs.add([str(photos["big"]), str(photos["small"])])
    d.output.setText(str(out))
    d.choose_preset(WEB)
    assert d.preview.text() == "big.jpg: 4000×3000 → 1600×1200"
    d.ok.click()
    model = gui.window.queue_model
    gui.wait(lambda: len(model.top_level_ids()) == 1)
    tid = model.top_level_ids()[0]
    gui.wait_text(tid, "Completed", timeout=120_000)
    with Image.open(out / "big.jpg") as big, Image.open(out / "small.jpg") as small:
        assert (big.size, small.size) == ((1600, 1200), (800, 600))  # no upscaling
        assert big.format == "JPEG"
    rec = gui.engine.get(tid)
    assert rec.payload["preset"] == WEB and rec.result["resized"] == 2
    after = (out / "big.jpg").stat().st_size + (out / "small.jpg").stat().st_size
    assert rec.result["bytes_after"] == after
    gui.window.show_pane(1)
    hist = gui.window.history_pane
    name = f"big.jpg and 1 more — {WEB}"
    gui.wait(lambda: any(r[HistoryColumn.NAME] == name for r in hist.visible_rows()))
    row = next(r for r in hist.visible_rows() if r[HistoryColumn.NAME] == name)
    from desktop.vocabulary import format_bytes

    assert row[HistoryColumn.OUTPUT] == (
        f"2 images · {format_bytes(rec.result['bytes_before'])} → {format_bytes(after)}"
    )
    assert row[HistoryColumn.DURATION] != "" and row[HistoryColumn.RESULT] == "Completed"
    assert gui.window.history_model.headerData(HistoryColumn.OUTPUT, Qt.Orientation.Horizontal) == "Output"


def test_Q11_cancelling_a_running_multipart_upload_asks_naming_it_then_aborts_it_on_the_server(
    gui: Harness, proxy: FaultProxy, moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    movie = tmp_path / "movie.mkv"
    movie.write_bytes(os.urandom(3 * 8 * 1024 * 1024))  # three parts of the default 8 MiB
    proxy.stall(match="partNumber=3")  # the third part hangs: the upload is running
    d = open_dialog(gui, "upload.s3", UploadDialog)
    d.inputs.add([str(movie)])
    d.endpoint.setText(proxy.url)
    d.bucket.setText(bucket)
    d.credentials.setText("env")
    d.ok.click()
    model = gui.window.queue_model
    gui.wait(lambda: len(model.top_level_ids()) == 1)
    tid = model.top_level_ids()[0]
    try:
        gui.wait(lambda: bool(proxy.seen("stalled")))
        gui.wait(lambda: s3.list_multipart_uploads(Bucket=bucket).get("Uploads"))
        gui.wait_text(tid, "Waiting for parts")  # a parent whose parts run: it is running
        pane = gui.window.queue_pane
        pane.select_task(tid)
        pane.actions_by_name["cancel"].trigger()
        box = gui.message_box("confirmCancel")
        assert box.text() == f"Cancel “movie.mkv → s3://{bucket}/”?"
        assert "running" in box.informativeText()
        gui.click(box, "accept")
    finally:
        proxy.release()
    gui.wait_text(tid, "Cancelled")
    gui.wait(lambda: s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [])
    assert moto.count("AbortMultipartUpload") >= 1
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    gui.window.show_pane(1)
    gui.wait(
        lambda: any(
            r[HistoryColumn.NAME] == f"movie.mkv → s3://{bucket}/" and r[HistoryColumn.RESULT] == "Cancelled"
            for r in gui.window.history_pane.visible_rows()
        )
    )


def test_given_upload_to_a_saved_target_was_chosen_when_files_are_dropped_then_each_is_uploaded_there(
    gui: Harness, moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    from desktop import targets

    gui.run(
        targets.save(
            gui.engine,
            targets.Target(
                name="Backup",
                kind="s3",
                endpoint_url=moto.url,
                bucket=bucket,
                prefix="drops",
                credentials="env",
            ),
        )
    )
    d = open_dialog(gui, "upload.s3", UploadDialog)
    assert not d.for_drops.isEnabled()  # only a saved target can take dropped files
    d.choose_target("Backup")
    assert d.for_drops.isEnabled() and d.bucket.text() == bucket
    d.for_drops.setChecked(True)
    d.inputs.add([str(photo(tmp_path / "first.jpg", (10, 10)))])
    d.ok.click()
    model = gui.window.queue_model
    gui.wait(lambda: len(model.top_level_ids()) == 1)
    files = []
    for n in ("x.bin", "y.bin"):
        (tmp_path / n).write_bytes(n.encode() * 1000)
        files.append(str(tmp_path / n))
    model.files_dropped.emit(files)
    gui.wait(lambda: len(model.top_level_ids()) == 3)
    # (in any order: under load one may have started, and running rows sort first)
    names = sorted(r[QueueColumn.NAME] for r in gui.window.queue_pane.visible_rows())
    assert names == [
        f"first.jpg → s3://{bucket}/drops/",
        f"x.bin → s3://{bucket}/drops/",
        f"y.bin → s3://{bucket}/drops/",
    ]
    for tid in model.top_level_ids():
        gui.wait_text(tid, "Completed")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["drops/first.jpg", "drops/x.bin", "drops/y.bin"]
    assert s3.get_object(Bucket=bucket, Key="drops/y.bin")["Body"].read() == b"y.bin" * 1000


def test_given_no_drop_choice_and_only_built_in_kinds_when_photos_are_dropped_then_resize_opens_with_them(
    make_app: Any, photos: dict[str, Path], tmp_path: Path
) -> None:
    gui = make_app(setup=None)  # what users have: no test kinds that take files
    gui.window.queue_model.files_dropped.emit([str(photos["big"]), str(photos["small"])])
    gui.wait(
        lambda: isinstance(gui.window.new_job_dialog, ResizeDialog) and gui.window.new_job_dialog.isVisible()
    )
    d = gui.window.new_job_dialog
    assert d.inputs.paths() == [str(photos["big"]), str(photos["small"])]
    assert d.error_text("output_dir") == "choose a folder for the resized copies"
    assert gui.window.queue_model.top_level_ids() == []  # nothing queued before OK
    d.reject()


def test_the_add_menu_opens_the_dialog_of_each_built_in_kind(gui: Harness) -> None:
    from desktop.dialogs.local_jobs import CommandDialog, CopyDialog
    from desktop.dialogs.net_jobs import DownloadDialog
    from desktop.dialogs.new_job import NewJobDialog

    w = gui.window
    assert w.action_new.menu() is w.new_menu
    for key, cls in (
        ("resize", ResizeDialog),
        ("copy", CopyDialog),
        ("command", CommandDialog),
        ("upload", UploadDialog),
        ("download", DownloadDialog),
        ("other", NewJobDialog),
    ):
        act = next(a for a in w.new_menu.actions() if a.objectName() == f"action_new_{key}")
        act.trigger()
        gui.wait(lambda cls=cls: isinstance(w.new_job_dialog, cls) and w.new_job_dialog.isVisible())
        dialog = w.new_job_dialog
        if cls is NewJobDialog:  # the generic form no longer offers the kinds with dialogs
            offered = {dialog.kind.itemData(i) for i in range(dialog.kind.count())}
            assert "test.gate" in offered and not offered & {"resize.images", "upload.s3", "command.run"}
        dialog.reject()
        gui.wait(lambda: w.new_job_dialog is None)


def test_given_the_drop_target_was_deleted_when_files_are_dropped_then_a_toast_says_so_and_nothing_queues(
    gui: Harness, tmp_path: Path
) -> None:
    remember_drop_action(gui.window.settings, "upload", "Gone")
    (tmp_path / "a.bin").write_bytes(b"a")
    gui.window.queue_model.files_dropped.emit([str(tmp_path / "a.bin")])
    gui.wait(
        lambda: gui.window.toast.text().startswith("Not queued: a.bin: the upload target “Gone” was deleted")
    )
    assert gui.window.queue_model.top_level_ids() == [] and no_modal()
