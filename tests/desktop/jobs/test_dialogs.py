"""The dedicated New-job dialogs: inline checks that name the field and disable Add to
queue, presets and saved targets that round-trip through the database, the credentials
entry with a keyring and without one; each submits through the window to a real engine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication, QInputDialog, QLabel

from core.jobs import presets
from core.jobs.net import credentials
from desktop import targets
from desktop.dialogs.local_jobs import CommandDialog, CopyDialog, ResizeDialog
from desktop.dialogs.net_jobs import CredentialsDialog, DownloadDialog, UploadDialog
from desktop.dialogs.new_job import NewJob
from desktop.models.roles import QueueColumn
from tests.desktop.conftest import Harness
from tests.desktop.test_schedules import add as add_schedule
from tests.desktop.test_schedules import open_dialog as open_schedule_dialog
from tests.desktop.test_schedules import pane_of as schedules_pane
from tests.net.servers import DavServer, FileServer, MotoServer

WEB = "Web 1600px JPEG q85"


def open_dialog(gui: Harness, kind: str, cls: type) -> Any:
    gui.window.new_job(kind)
    gui.wait(lambda: isinstance(gui.window.new_job_dialog, cls) and gui.window.new_job_dialog.isVisible())
    dialog = gui.window.new_job_dialog
    shots = os.environ.get("TASKDECK_DIALOG_SHOTS")  # look at them: /tmp/dlg-<kind>.png
    if shots:
        dialog.grab().save(os.path.join(shots, f"dlg-{kind}.png"))
    return dialog


def only_row(gui: Harness) -> int:
    gui.wait(lambda: len(gui.window.queue_model.top_level_ids()) == 1)
    return gui.window.queue_model.top_level_ids()[0]


def test_given_a_new_dialog_then_what_is_missing_is_a_hint_and_only_a_wrong_value_is_an_error(
    gui: Harness, tmp_path: Path
) -> None:
    d = open_dialog(gui, "resize.images", ResizeDialog)
    message = d.findChild(QLabel, "error_inputs")
    assert d.error_text("inputs") == "add photos or folders to resize" and not d.ok.isEnabled()
    assert message.property("role") == "hint"  # a new form does not open in red
    assert not d.inputs.list.property("invalid")
    d.output.setText(str(tmp_path / "out"))
    d.inputs.add([str(tmp_path / "missing.jpg")])
    assert d.error_text("inputs").startswith("no such file or folder")
    assert message.property("role") == "error" and d.inputs.list.property("invalid")
    d.inputs.set_paths([])  # emptied by the user: now it is an error too
    assert message.property("role") == "error" and d.error_text("inputs") == "add photos or folders to resize"
    d.reject()


def test_given_a_new_dialog_then_every_field_it_still_needs_says_so_at_once(gui: Harness) -> None:
    """Not one at a time: a user filling the form top to bottom sees all that is left."""
    needs = {
        ("resize.images", ResizeDialog): {
            "inputs": "add photos or folders to resize",
            "output_dir": "choose a folder for the resized copies",
        },
        ("files.copy", CopyDialog): {
            "source": "choose the folder to copy",
            "destination": "choose where to copy it",
        },
        ("upload.s3", UploadDialog): {
            "inputs": "add files or folders to upload",
            "bucket": "name the bucket",
        },
        ("download.http", DownloadDialog): {
            "url": "type the address to download",
            "output_dir": "choose the folder to save into",
        },
    }
    for (kind, cls), expected in needs.items():
        d = open_dialog(gui, kind, cls)
        if isinstance(d, DownloadDialog):
            d.output.setText("")  # (it opens on the last folder used)
        assert {key: d.error_text(key) for key in expected} == expected, kind
        assert not d.ok.isEnabled() and not d.schedule_button.isEnabled()
        assert all(d.findChild(QLabel, f"error_{key}").property("role") == "hint" for key in expected)
        d.reject()
        gui.wait(lambda: gui.window.new_job_dialog is None)


def test_given_the_resize_dialog_when_fields_are_wrong_then_add_is_disabled_and_the_field_says_why(
    gui: Harness, photos: dict[str, Path], tmp_path: Path
) -> None:
    d = open_dialog(gui, "resize.images", ResizeDialog)
    assert not d.ok.isEnabled()
    assert d.error_text("inputs") == "add photos or folders to resize"
    d.inputs.add([str(photos["small"])])
    assert d.error_text("output_dir") == "choose a folder for the resized copies" and not d.ok.isEnabled()
    d.output.setText(str(tmp_path / "out"))
    assert d.ok.isEnabled()
    d.inputs.add([str(tmp_path / "missing.jpg")])
    assert d.error_text("inputs").startswith("no such file or folder") and not d.ok.isEnabled()
    d.inputs.set_paths([str(photos["big"])])
    assert d.ok.isEnabled() and d.error_text("inputs") == ""
    assert d.preview.text() == "big.jpg: 4000×3000 → 4000×3000"
    d.choose_preset(WEB)
    assert (d.max_width.value(), d.max_height.value(), d.format.currentData()) == (1600, 1600, "jpeg")
    assert d.strip.isChecked() and d.quality.value() == 85
    assert d.preview.text() == "big.jpg: 4000×3000 → 1600×1200"
    d.name_pattern.setText("../{stem}{ext}")
    assert not d.ok.isEnabled() and "without /" in d.error_text("name_pattern")
    d.name_pattern.setText("{nope}.jpg")
    assert d.error_text("name_pattern").startswith("unknown field {nope}")
    d.name_pattern.setText("")
    assert d.ok.isEnabled()
    job = d.job()
    assert job.payload["preset"] == WEB and job.payload["max_width"] == 1600
    assert job.label == f"big.jpg — {WEB}"
    d.quality.setValue(70)  # no longer the preset: the payload does not claim it
    assert "preset" not in d.job().payload
    d.reject()


def test_given_options_when_saved_as_a_preset_then_the_database_has_it_and_delete_removes_it(
    gui: Harness,
) -> None:
    d = open_dialog(gui, "resize.images", ResizeDialog)
    d.choose_preset(WEB)
    d.quality.setValue(70)
    assert not d.delete_preset.isEnabled()  # built-in presets cannot be deleted
    d.save_preset.click()
    box: list[QInputDialog] = []
    gui.wait(
        lambda: (
            box.extend(
                w
                for w in QApplication.topLevelWidgets()
                if w.objectName() == "presetNameDialog" and w.isVisible()
            )
            or box
        )
    )
    box[0].setTextValue("Web q70")
    box[0].accept()
    gui.wait(lambda: d.preset_name() == "Web q70")
    saved = {p.name: p for p in gui.run(presets.list_presets(gui.engine, "resize.images"))}
    assert saved["Web q70"].options["quality"] == 70 and saved["Web q70"].options["max_width"] == 1600
    assert not saved["Web q70"].builtin
    assert d.delete_preset.isEnabled()
    d.delete_preset.click()
    gui.wait(lambda: d.preset.findData("Web q70") < 0)
    names = [p.name for p in gui.run(presets.list_presets(gui.engine, "resize.images"))]
    assert "Web q70" not in names and WEB in names
    d.reject()


def test_given_the_command_dialog_when_a_secret_is_typed_into_env_then_it_is_refused_and_a_shell_line_runs(
    gui: Harness, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("API_TOKEN", "from-the-environment")  # the worker is this process
    d = open_dialog(gui, "command.run", CommandDialog)
    assert "shell" in d.shell.text() and "/bin/sh -c" in d.shell.text()
    assert d.argv_preview.text() == "the program and its arguments, once you type a command"
    assert d.argv_preview.property("role") == "hint"
    d.command.setText("echo 'hello world'")
    assert d.argv_preview.text() == "'echo' · 'hello world'" and d.argv_preview.property("role") == ""
    assert d.ok.isEnabled()
    d.env.setPlainText("API_TOKEN=abc123")
    assert not d.ok.isEnabled() and "looks like a secret" in d.error_text("env")
    d.env.setPlainText("API_TOKEN=$API_TOKEN\nGREETING=hi")
    assert d.ok.isEnabled()
    d.progress.setText("(")
    assert "not a valid regular expression" in d.error_text("progress_regex")
    d.progress.setText(r"(\d+)%")
    d.command.setText("echo 'a b")
    assert d.error_text("argv").startswith("cannot split it into arguments")
    d.shell.setChecked(True)
    d.command.setText(f"echo 50% > {tmp_path}/out.txt && echo done")
    d.cwd.setText(str(tmp_path / "nowhere"))
    assert d.error_text("cwd").startswith("no such folder")
    d.cwd.setText(str(tmp_path))
    job = d.job()
    assert job.payload["argv"] == [f"echo 50% > {tmp_path}/out.txt && echo done"] and job.payload["shell"]
    d.ok.click()
    tid = only_row(gui)
    gui.wait_text(tid, "Completed")
    assert (tmp_path / "out.txt").read_text() == "50%\n"


def test_given_the_copy_dialog_when_the_destination_is_inside_the_source_then_it_says_so_then_previews_and_syncs(
    gui: Harness, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "a b.txt").write_text("x")
    d = open_dialog(gui, "files.copy", CopyDialog)
    d.source.setText(str(src))
    d.destination.setText(str(src / "inner"))
    assert not d.ok.isEnabled() and d.error_text("destination").startswith("is inside the source folder")
    assert not d.preview_button.isEnabled()
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "a b.txt").write_text("x")
    (tmp_path / "dst" / "old.txt").write_text("gone")
    d.destination.setText(str(tmp_path / "dst"))
    assert d.ok.isEnabled() and not d.delete.isEnabled()
    d.preview_button.click()
    gui.wait(lambda: d.preview_summary.text() not in ("", "listing…"))
    shown = [d.preview_list.item(i).text() for i in range(d.preview_list.count())]
    assert shown == ["update: a b.txt"] and d.preview_summary.text() == "1 change, 0 unchanged"
    d.mode.setCurrentIndex(d.mode.findData("sync"))
    assert d.delete.isEnabled()
    d.delete.setChecked(True)
    d.preview_summary.clear()
    d.preview_button.click()
    gui.wait(lambda: d.preview_summary.text() not in ("", "listing…"))
    shown = [d.preview_list.item(i).text() for i in range(d.preview_list.count())]
    assert shown == ["update: a b.txt", "delete: old.txt"], shown
    assert (tmp_path / "dst" / "old.txt").exists()  # a preview changes nothing
    d.ok.click()
    tid = only_row(gui)
    gui.wait_text(tid, "Completed")
    assert (tmp_path / "dst" / "a b.txt").read_text() == "x"
    assert not (tmp_path / "dst" / "old.txt").exists()


def test_given_the_download_dialog_when_fields_are_wrong_then_each_names_its_problem(
    gui: Harness, tmp_path: Path
) -> None:
    d = open_dialog(gui, "download.http", DownloadDialog)
    d.url.setText("ftp://example.com/a.zip")
    assert d.error_text("url") == "must start with http:// or https://"
    d.url.setText("http://127.0.0.1:9/a.zip")
    d.output.setText(str(tmp_path / "missing"))
    assert d.error_text("output_dir").endswith("is not an existing folder") and not d.ok.isEnabled()
    d.output.setText(str(tmp_path))
    assert d.ok.isEnabled()
    d.sha256.setText("abc")
    assert d.error_text("sha256") == "must be 64 hex digits (0-9, a-f); it has 3 characters"
    d.sha256.setText("A" * 64)
    d.headers.setPlainText("Cookie: session=1")
    assert (
        d.error_text("headers") == "line 1: Cookie is a secret: name a keyring entry in Credentials instead"
    )
    d.headers.setPlainText("Accept: application/zip")
    job = d.job()
    assert job.payload["headers"] == {"Accept": "application/zip"}
    assert job.payload["sha256"] == "a" * 64 and job.group == "127.0.0.1:9"
    assert job.key and job.label == "a.zip ← 127.0.0.1:9"
    d.reject()


def test_given_a_saved_target_when_the_upload_dialog_reopens_then_it_is_chosen_and_no_secret_is_stored(
    gui: Harness, keyring_file: Path, moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "a.bin").write_bytes(b"abc" * 100)
    d = open_dialog(gui, "upload.s3", UploadDialog)
    d.inputs.add([str(tmp_path / "a.bin")])
    d.target_name.setText("Photos bucket")
    d.endpoint.setText(moto.url)
    assert d.error_text("bucket") == "name the bucket" and not d.ok.isEnabled()
    d.bucket.setText("-photos")  # a pattern the schema refuses: the message says which form it wants
    assert d.error_text("bucket").startswith("is not in the expected form: the bucket's name: letters")
    d.bucket.setText(bucket)
    d.prefix.setText("trip/")
    d.set_secret.click()
    gui.wait(lambda: d.credentials_dialog is not None and d.credentials_dialog.isVisible())
    cred: CredentialsDialog = d.credentials_dialog
    assert cred.save.isEnabled() and not cred.message.isVisible()
    # each field has an access key that leads to it
    assert cred.first_label.text() == "&Access key ID:" and cred.first_label.buddy() is cred.first
    assert cred.second_label.text() == "S&ecret key:" and cred.second_label.buddy() is cred.second
    cred.entry.setText("photos-key")
    cred.first.setText("testing")
    cred.second.setText("SECRETVALUE123")
    cred.save.click()
    gui.wait(lambda: d.credentials.text() == "photos-key")
    assert credentials.load("photos-key") == credentials.S3Credentials(
        access_key_id="testing", secret_access_key="SECRETVALUE123"
    )
    d.save_target.click()
    gui.wait(lambda: d.target.currentData() == "Photos bucket")
    stored = gui.engine.get_setting(targets.SETTING)
    assert stored["Photos bucket"] == {
        "kind": "s3",
        "endpoint_url": moto.url,
        "bucket": bucket,
        "prefix": "trip/",
        "credentials": "photos-key",
    }
    assert "SECRETVALUE123" not in json.dumps(stored)
    assert d.ok.isEnabled()
    d.ok.click()
    tid = only_row(gui)
    gui.wait_text(tid, "Completed")
    assert s3.get_object(Bucket=bucket, Key="trip/a.bin")["Body"].read() == b"abc" * 100
    assert gui.text(tid, QueueColumn.NAME) == f"a.bin → s3://{bucket}/trip/"
    d2 = open_dialog(gui, "upload.s3", UploadDialog)
    assert d2.target.currentData() == "Photos bucket"
    assert (d2.bucket.text(), d2.prefix.text(), d2.credentials.text()) == (bucket, "trip/", "photos-key")
    d2.type.setCurrentIndex(3)  # WebDAV: the S3 rows go, the address row comes
    assert d2.url.isVisibleTo(d2) and not d2.bucket.isVisibleTo(d2)
    assert d2.error_text("url") == "type the address to upload to"
    d2.url.setText("http://user:pw@example.com/dav/")
    d2.inputs.add([str(tmp_path / "a.bin")])
    assert "without user:password" in d2.error_text("url")
    d2.reject()


def test_given_no_keyring_when_a_secret_is_to_be_kept_then_the_dialog_says_what_to_do_instead(
    gui: Harness, no_keyring: None
) -> None:
    d = open_dialog(gui, "upload.s3", UploadDialog)
    d.set_secret.click()
    gui.wait(lambda: d.credentials_dialog is not None and d.credentials_dialog.isVisible())
    cred = d.credentials_dialog
    assert cred.message.isVisible() and cred.message.text().startswith("No keyring is available")
    assert "“env”" in cred.message.text() and not cred.save.isEnabled()
    cred.reject()
    d.reject()


def test_given_a_webdav_target_when_a_folder_is_uploaded_from_the_dialog_then_it_lands_on_the_server(
    gui: Harness, dav: DavServer, dav_root: Path, tmp_path: Path
) -> None:
    album = tmp_path / "album"
    (album / "may").mkdir(parents=True)
    (album / "may" / "one.jpg").write_bytes(b"1" * 500)
    (album / "two.jpg").write_bytes(b"2" * 700)
    d = open_dialog(gui, "upload.http", UploadDialog)
    d.type.setCurrentIndex(3)  # WebDAV
    d.inputs.add([str(album)])
    d.url.setText(dav.url + "/photos/one-file")
    assert "end it with '/'" in d.error_text("url") and not d.ok.isEnabled()  # a folder needs a folder URL
    d.url.setText(dav.url + "/photos/")
    assert d.ok.isEnabled()
    d.ok.click()
    tid = only_row(gui)
    gui.wait_text(tid, "Completed")
    assert (dav_root / "photos" / "album" / "may" / "one.jpg").read_bytes() == b"1" * 500
    assert (dav_root / "photos" / "album" / "two.jpg").read_bytes() == b"2" * 700
    assert "MKCOL" in dav.methods()


def test_given_a_download_with_its_sha256_when_added_from_the_dialog_then_the_checked_file_is_saved(
    gui: Harness, files: FileServer, tmp_path: Path
) -> None:
    import hashlib

    data = os.urandom(300_000)
    files.add("/files/report.pdf", data)
    out = tmp_path / "downloads"
    out.mkdir()
    d = open_dialog(gui, "download.http", DownloadDialog)
    d.url.setText(files.url + "/files/report.pdf")
    d.output.setText(str(out))
    d.sha256.setText(hashlib.sha256(data).hexdigest().upper())
    d.ok.click()
    tid = only_row(gui)
    gui.wait_text(tid, "Completed")
    assert (out / "report.pdf").read_bytes() == data
    assert gui.text(tid, QueueColumn.NAME).startswith("report.pdf ← 127.0.0.1:")
    assert gui.window.settings.value("downloadFolder") == str(out)  # remembered for next time


def test_given_the_upload_dialog_when_the_type_changes_then_it_fits_the_rows_on_show(gui: Harness) -> None:
    d = open_dialog(gui, "upload.s3", UploadDialog)  # S3: the most rows

    def needed() -> int:  # the height the rows on show take at the dialog's width
        lay = d.layout()
        return lay.totalHeightForWidth(d.width()) if lay.hasHeightForWidth() else lay.totalSizeHint().height()

    gui.wait(lambda: d.height() >= needed() - 2)  # shown at the height S3's rows take
    d.type.setCurrentIndex(1)  # HTTP PUT: other rows; no spare height may pad them
    gui.wait(lambda: abs(d.height() - needed()) <= 2)
    d.type.setCurrentIndex(0)  # and back: nothing is squeezed
    gui.wait(lambda: abs(d.height() - needed()) <= 2)
    d.reject()


def test_given_headers_in_the_upload_dialog_when_a_line_is_wrong_or_secret_then_it_is_named_else_they_are_sent(
    gui: Harness, files: FileServer, tmp_path: Path
) -> None:
    (tmp_path / "page.html").write_bytes(b"<p>hi</p>")
    d = open_dialog(gui, "upload.http", UploadDialog)
    d.type.setCurrentIndex(1)  # HTTP PUT: headers show, the part size does not
    assert d.headers.isVisibleTo(d) and not d.part_size.isVisibleTo(d)
    d.inputs.add([str(tmp_path / "page.html")])
    d.url.setText(files.url + "/site/")
    assert d.ok.isEnabled()
    d.headers.setPlainText("Cache-Control: max-age=60\nnonsense")
    assert d.error_text("headers") == "line 2: write Name: value" and not d.ok.isEnabled()
    d.headers.setPlainText("Cache-Control: max-age=60\nAuthorization: Bearer abc")
    assert d.error_text("headers").startswith("line 2: Authorization is a secret") and not d.ok.isEnabled()
    d.headers.setPlainText("Cache-Control: a\ncache-control: b")
    assert d.error_text("headers") == "line 2: cache-control is already on line 1"
    d.headers.setPlainText("Content-Length: 5")
    assert d.error_text("headers") == "line 1: Taskdeck sets Content-Length itself"
    d.headers.setPlainText("X Note: 1")
    assert d.error_text("headers").startswith("line 1: 'X Note' is not a header name")
    d.target_name.setText("Blog")
    d.save_target.click()  # not saved without the headers the user typed: it says why
    assert d.error_text("headers").startswith("line 1: 'X Note'")
    assert "Blog" not in (gui.engine.get_setting(targets.SETTING) or {})
    d.headers.setPlainText("X-Note: caf\u00e9")
    assert d.error_text("headers") == "a header value holds printable ASCII only, on one line"
    d.headers.setPlainText("Cache-Control: max-age=60\n\nX-Site:  blog ")
    d.speed.setValue(800)
    assert d.ok.isEnabled() and d.error_text("headers") == ""
    job = d.job()
    assert job.payload["headers"] == {"Cache-Control": "max-age=60", "X-Site": "blog"}
    assert job.payload["bandwidth_limit"] == 800_000
    d.save_target.click()
    gui.wait(lambda: d.target.currentData() == "Blog")
    assert gui.engine.get_setting(targets.SETTING)["Blog"]["headers"] == {
        "Cache-Control": "max-age=60",
        "X-Site": "blog",
    }
    d.ok.click()
    tid = only_row(gui)
    gui.wait_text(tid, "Completed")
    body, sent = files.received["/site/page.html"]
    assert body == b"<p>hi</p>" and sent["Cache-Control"] == "max-age=60" and sent["X-Site"] == "blog"
    d2 = open_dialog(gui, "upload.http", UploadDialog)
    d2.choose_target("Blog")
    assert d2.headers.toPlainText() == "Cache-Control: max-age=60\nX-Site: blog"
    assert d2.speed.value() == 0 and d2.speed.text() == "no limit of its own"  # the limit is per job
    d2.reject()


def test_given_a_part_size_when_a_big_file_is_uploaded_from_the_dialog_then_it_goes_in_parts_of_that_size(
    gui: Harness, moto: MotoServer, s3: Any, bucket: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    data = os.urandom(11 * 1024 * 1024)
    (tmp_path / "video.bin").write_bytes(data)
    d = open_dialog(gui, "upload.s3", UploadDialog)
    assert d.part_size.text() == "automatic (8 MiB)" and not d.headers.isVisibleTo(d)
    d.inputs.add([str(tmp_path / "video.bin")])
    d.endpoint.setText(moto.url)
    d.bucket.setText(bucket)
    d.credentials.setText("env")
    d.part_size.setValue(5)
    job = d.job()
    assert job.payload["part_size"] == 5 * 1024 * 1024 and "bandwidth_limit" not in job.payload
    d.target_name.setText("Videos")
    d.save_target.click()
    gui.wait(lambda: d.target.currentData() == "Videos")
    assert gui.engine.get_setting(targets.SETTING)["Videos"]["part_size"] == 5 * 1024 * 1024
    d.ok.click()
    tid = only_row(gui)
    gui.wait_text(tid, "Completed", timeout=60_000)
    assert s3.get_object(Bucket=bucket, Key="video.bin")["Body"].read() == data
    assert sorted(moto.parts_sent()) == [1, 2, 3]  # 5 + 5 + 1 MiB


def _fill(d: Any, kind: str, tmp_path: Path) -> None:
    """Every dedicated dialog with values a generic form could get wrong: paths holding ';'
    and spaces, objects, lists, numbers and unticked defaults."""
    odd = tmp_path / "trip; day 1"
    odd.mkdir(exist_ok=True)
    (odd / "a b.jpg").write_bytes(b"x")
    if kind == "resize.images":
        d.inputs.add([str(odd / "a b.jpg"), str(odd)])
        d.output.setText(str(tmp_path / "out; small"))
        d.max_width.setValue(1200)
        d.quality.setValue(70)
        d.strip.setChecked(True)
    elif kind == "files.copy":
        d.source.setText(str(odd))
        d.destination.setText(str(tmp_path / "backup"))
        d.verify.setChecked(True)
    elif kind == "command.run":
        d.command.setText("rsync -a 'my photos/' /mnt/backup")
        d.env.setPlainText("GREETING=hi there\nMODE=a;b")
        d.timeout.setValue(90)
    elif kind == "download.http":
        d.url.setText("http://127.0.0.1:9/files/report.pdf")
        (tmp_path / "downloads").mkdir()
        d.output.setText(str(tmp_path / "downloads"))
        d.headers.setPlainText("Accept: application/pdf")
        d.speed.setValue(500)
    else:
        d.type.setCurrentIndex(1)  # HTTP PUT
        d.inputs.add([str(odd)])
        d.url.setText("http://127.0.0.1:9/site/")
        d.headers.setPlainText("Cache-Control: max-age=60")
    d.priority.setCurrentIndex(1)  # High
    d.label.setText("Nightly " + kind)


def test_given_a_job_dialog_when_schedule_is_pressed_then_a_new_schedule_runs_exactly_that_job(
    gui: Harness, tmp_path: Path
) -> None:
    """Schedule… takes the job built in the dedicated dialog (saved targets, presets, pickers)
    into New schedule unchanged: the generic Job form there shows it field by field, and
    Save stores the same payload, priority and name."""
    from desktop.dialogs.schedule import ScheduleDialog

    dialogs = (
        ("resize.images", ResizeDialog),
        ("files.copy", CopyDialog),
        ("command.run", CommandDialog),
        ("download.http", DownloadDialog),
        ("upload.http", UploadDialog),
    )
    pane = gui.window.schedules_pane
    for kind, cls in dialogs:
        d = open_dialog(gui, kind, cls)
        assert d.schedule_button.text() == "&Schedule…" and not d.schedule_button.isEnabled()
        _fill(d, kind, tmp_path)
        assert d.schedule_button.isEnabled(), (kind, {k: d.error_text(k) for k in d._errors})
        job = d.job()
        d.schedule_button.click()
        gui.wait(lambda: isinstance(pane.dialog, ScheduleDialog) and pane.dialog.isVisible())
        assert gui.window.panes.currentWidget() is pane
        sd: ScheduleDialog = pane.dialog
        assert sd.name_edit.text() == f"Nightly {kind}"
        draft = sd.draft()
        assert draft is not None and sd.save_button.isEnabled()
        assert (draft.kind, draft.payload, draft.priority) == (job.kind, job.payload, job.priority), kind
        assert gui.window.queue_model.top_level_ids() == []  # nothing was queued
        sd.save_button.click()
        gui.wait(lambda: pane.dialog is None)
        gui.wait(lambda kind=kind: any(s.name == f"Nightly {kind}" for s in gui.engine.schedules.list()))
        stored = next(s for s in gui.engine.schedules.list() if s.name == f"Nightly {kind}")
        assert (stored.kind, stored.payload) == (job.kind, job.payload)
        assert stored.options.get("priority") == job.priority


def test_given_the_other_kind_dialog_when_schedule_is_pressed_then_new_schedule_has_its_job(
    gui: Harness,
) -> None:
    from desktop.dialogs.new_job import NewJobDialog
    from desktop.dialogs.schedule import ScheduleDialog

    gui.window.new_job("")
    gui.wait(
        lambda: isinstance(gui.window.new_job_dialog, NewJobDialog) and gui.window.new_job_dialog.isVisible()
    )
    d = gui.window.new_job_dialog
    d.kind.setCurrentIndex(d.kind.findData("demo.sleep"))
    d.field("seconds").setText("2.5")
    assert d.schedule_button.isEnabled()
    d.schedule_button.click()
    pane = gui.window.schedules_pane
    gui.wait(lambda: isinstance(pane.dialog, ScheduleDialog) and pane.dialog.isVisible())
    draft = pane.dialog.draft()
    assert draft is not None and (draft.kind, draft.payload) == ("demo.sleep", {"seconds": 2.5})
    pane.dialog.reject()
    gui.wait(lambda: pane.dialog is None)
    assert gui.engine.schedules.list() == []


def test_given_a_job_when_loaded_into_its_own_dialog_then_the_dialog_makes_the_same_job(
    gui: Harness, tmp_path: Path
) -> None:
    for kind, cls in (
        ("resize.images", ResizeDialog),
        ("files.copy", CopyDialog),
        ("command.run", CommandDialog),
        ("download.http", DownloadDialog),
        ("upload.http", UploadDialog),
        ("upload.s3", UploadDialog),
    ):
        d = open_dialog(gui, kind, cls)
        if kind == "upload.s3":
            d.inputs.add([str(tmp_path)])
            d.bucket.setText("photos")
            d.prefix.setText("trip/")
            d.part_size.setValue(16)
        else:
            _fill(d, kind, tmp_path)
        job = d.job()
        assert job is not None, kind
        d.reject()
        gui.wait(lambda: gui.window.new_job_dialog is None)
        again = open_dialog(gui, kind, cls)
        assert again.load_job(job), kind
        assert again.job() == job, kind
        again.reject()
        gui.wait(lambda: gui.window.new_job_dialog is None)


def edit_schedule(gui: Harness, kind: str, payload: Any, **options: Any) -> tuple[int, Any]:
    """A schedule added to the engine, open in Edit schedule: (its id, the dialog)."""
    sid = add_schedule(gui, kind, payload, **options)
    pane = schedules_pane(gui)
    gui.wait(lambda: pane.model.schedule(sid) is not None)
    pane.select_schedule(sid)
    return sid, open_schedule_dialog(gui, pane, edit=True)


def test_given_a_schedule_of_a_built_in_kind_when_edited_in_its_own_dialog_then_the_change_is_saved(
    gui: Harness, tmp_path: Path
) -> None:
    payload = {"inputs": [str(tmp_path)], "output_dir": str(tmp_path / "out"), "quality": 70}
    sid, sd = edit_schedule(gui, "resize.images", payload, cron="0 2 * * *", name="Night resize")
    pane = gui.window.schedules_pane
    assert sd.edit_job_button.isVisible() and sd.edit_job_button.text() == "Edit in the Resize photos dialog…"
    sd.edit_job_button.click()
    gui.wait(lambda: isinstance(sd.job_editor, ResizeDialog) and sd.job_editor.isVisible())
    editor: ResizeDialog = sd.job_editor
    assert editor.ok.text() == "Use this job" and not editor.schedule_button.isVisible()
    assert editor.inputs.paths() == [str(tmp_path)] and editor.quality.value() == 70
    assert not editor.for_drops.isVisible()  # dropped files go to the queue
    editor.max_width.setValue(800)
    editor.ok.click()
    gui.wait(lambda: sd.job_editor is None)
    assert sd.draft().payload == {**payload, "format": "keep", "max_width": 800}
    sd.save_button.click()
    gui.wait(lambda: pane.dialog is None)
    gui.wait(lambda: gui.engine.schedules.get(sid).payload.get("max_width") == 800)
    assert gui.window.queue_model.top_level_ids() == []


def test_given_a_payload_its_own_dialog_cannot_show_when_edit_is_pressed_then_it_says_so(
    gui: Harness,
) -> None:
    _, sd = edit_schedule(gui, "command.run", {"argv": ["true"], "timeout": 2.5}, every=3600.0)
    sd.edit_job_button.click()  # its time limit is whole seconds: 2.5 s would become 2
    gui.wait(lambda: sd.edit_job_note.isVisible())
    assert (
        sd.edit_job_note.text() == "This job has settings the Command dialog does not show: edit them here."
    )
    assert sd.job_editor is None and sd.draft().payload == {"argv": ["true"], "timeout": 2.5}
    sd.reject()


def test_given_a_payload_sent_to_a_saved_target_when_loaded_then_that_target_is_chosen(
    gui: Harness, tmp_path: Path
) -> None:
    target = targets.Target(name="Site", kind="http", url="http://127.0.0.1:9/site/", headers=(("X-A", "1"),))
    gui.run(targets.save(gui.engine, target))
    d = open_dialog(gui, "upload.http", UploadDialog)
    assert d.job() is None  # nothing chosen yet
    payload = {**target.payload([str(tmp_path)]), "bandwidth_limit": 200_000}
    assert d.load_job(NewJob("upload.http", payload, None, 64, None))
    assert d.target.currentData() == "Site" and d.delete_target.isEnabled()
    assert d.url.text() == target.url and d.speed.value() == 200
    d.reject()
