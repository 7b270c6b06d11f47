"""ux §4.4, the app shell, and the hygiene around it: quit, stop after current, single
instance, layout, keyboard, accessible names, an unusable database, attaching to a worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QWidget,
)

from core import Engine, EngineConfig
from core.jobs import register_builtin
from desktop.app import App, Options
from desktop.bridge import FLUSH_MS
from desktop.dialogs.new_job import NewJobDialog
from desktop.dialogs.settings import SettingsDialog
from desktop.profile import Profile
from desktop.views.main_window import recovery_text
from tests.desktop.conftest import Harness


def test_A01_recovery_banner_text() -> None:
    from core import Recovery

    assert recovery_text(Recovery(resumed=3, restarted=1)) == (
        "Recovered 4 jobs from the last session: 3 resumed from where they stopped, "
        "1 restarted from the beginning."
    )


def test_A02_quit_with_running_jobs_asks_the_same_way_on_every_path(gui: Harness) -> None:
    a = gui.submit("test.gate", {"gate": "a2"})
    b = gui.submit("test.gate", {"gate": "a2"})
    gui.wait_text(a, "Running")
    gui.wait_text(b, "Running")
    w = gui.window
    for trigger in (w.action_quit.trigger, w.close):
        trigger()
        box = gui.message_box("confirmQuit")
        assert box.text() == "2 jobs are running."
        assert box.informativeText() == "They will pause and resume when you next open the app."
        assert box.checkBox() is not None and box.checkBox().text() == "Don't ask again"
        gui.click(box, "cancel")
        gui.wait(lambda b=box: not b.isVisible() and not gui.app._quitting)
        assert w.isVisible() and not gui.app.bridge.closed
    w.action_quit.trigger()
    gui.click(gui.message_box("confirmQuit"), "accept")
    gui.wait(lambda: gui.app.bridge.closed)
    # they were interrupted with their checkpoints: pending again at the next open
    gui.run(asyncio.sleep(0))


def test_A02_quit_with_nothing_running_does_not_ask(gui: Harness) -> None:
    gui.window.action_quit.trigger()
    gui.wait(lambda: gui.app.bridge.closed)
    assert not [x for x in QApplication.topLevelWidgets() if isinstance(x, QMessageBox) and x.isVisible()]


def test_A06_stop_after_current_lets_the_running_job_finish(make_app) -> None:
    gui = make_app(EngineConfig(max_concurrency=1))
    first = gui.submit("test.gate", {"gate": "a6"})
    rest = [gui.submit("test.quick", {"n": i}) for i in range(3)]
    gui.wait_text(first, "Running")
    gui.window.action_hold.trigger()
    gui.wait(lambda: gui.window.mode_label.text() == "Stopped after current job")
    gui.open_gate("a6")
    gui.wait_text(first, "Completed")
    gui.wait(lambda: all(gui.text(i) == "Queued — stopped after current job" for i in rest))
    assert gui.window.queue_pane.mode_banner.text().startswith("Stopped after current job")
    gui.window.action_hold.trigger()
    for i in rest:
        gui.wait_text(i, "Completed")


def test_A08_a_second_launch_hands_its_files_to_the_open_window(gui: Harness, tmp_path: Path) -> None:
    files = [tmp_path / "one.jpg", tmp_path / "two.jpg"]
    for f in files:
        f.write_bytes(b"x")
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "--profile", str(gui.profile_dir), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    gui.wait(lambda: proc.poll() is not None, timeout=60_000)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "already open" in out
    model = gui.window.queue_model
    gui.wait(lambda: sorted(gui.record(i).name for i in model.top_level_ids()) == ["one.jpg", "two.jpg"])
    gui.open_gate("files")


def _settled(w: QWidget) -> bool:
    """Shown, exposed, and placed by the window manager."""
    handle = w.windowHandle()
    return w.isVisible() and handle is not None and handle.isExposed()


def test_A10_layout_persists(make_app, profile_dir: Path) -> None:
    gui = make_app()
    w = gui.window
    gui.wait(lambda: _settled(w))
    header = w.queue_pane.view.header()
    header.resizeSection(0, 333)
    header.setSectionHidden(3, True)
    w.splitter.setSizes([150, 800, 400])
    gui.wait(lambda: w.splitter.sizes()[0] > 0)
    sizes = w.splitter.sizes()
    w.show_pane(1)
    w.save_state()
    gui.run(gui.app.shutdown())
    again = make_app(directory=profile_dir)
    w2 = again.window
    assert w2.queue_pane.view.header().sectionSize(0) == 333
    assert w2.queue_pane.view.header().isSectionHidden(3)
    assert w2.current_pane() == 1 and w2.sidebar.current_key() == "history"
    again.wait(lambda: _settled(w2))

    def restored() -> bool:
        return all(abs(a - b) <= 40 for a, b in zip(w2.splitter.sizes(), sizes, strict=True))

    try:
        again.wait(restored)
    except Exception:
        raise AssertionError(f"splitter {w2.splitter.sizes()}, saved {sizes}") from None
    assert Profile.create(profile_dir).settings().value("version") in (1, "1")


def test_A12_keyboard_only(gui: Harness) -> None:
    tid = gui.submit("test.gate", {"gate": "a12"}, label="kb")
    gui.wait_text(tid, "Running")
    w = gui.window
    w.activateWindow()
    gui.wait(lambda: QApplication.activeWindow() is w)
    pane = w.queue_pane
    pane.view.setFocus()
    pane.select_task(tid)
    QTest.keyClick(pane.view, Qt.Key.Key_Space)
    gui.wait_text(tid, "Paused")
    QTest.keyClick(pane.view, Qt.Key.Key_Space)
    gui.wait_text(tid, "Running")
    QTest.keyClick(pane.view, Qt.Key.Key_Delete)
    box = gui.message_box("confirmCancel")
    gui.click(box, "cancel")
    w.findChild(type(w.action_quit), "action_find").trigger()
    gui.wait(lambda: w.search.hasFocus() or QApplication.focusWidget() is w.search)
    w.findChild(type(w.action_quit), "action_shortcuts").trigger()
    sheet = gui.message_box("shortcutsDialog")
    text = sheet.informativeText()
    for keys in ("Alt+Up", "Ctrl+Home", "Space", "Ctrl+F", "Ctrl+Q", "Del"):
        assert keys in text, keys
    # keys and actions line up as a table's columns, and a key that means something else
    # in the Schedules pane says so
    assert text.startswith("<table>") and "<td>Cancel</td>" in text
    assert "<td>Delete (Schedules)</td>" in text
    sheet.close()
    gui.open_gate("a12")


def test_A13_every_control_has_an_accessible_name_and_rows_speak(gui: Harness) -> None:
    tid = gui.submit("test.gate", {"gate": "a13", "total": 100}, label="beach.jpg")
    gui.wait(lambda: (r := gui.record(tid)) is not None and (r.progress or 0) > 0)
    w = gui.window
    controls = [
        c for t in (QAbstractButton, QLineEdit, QAbstractSpinBox, QComboBox) for c in w.findChildren(t)
    ]
    unnamed = [
        f"{type(c).__name__} {c.objectName()!r} {getattr(c, 'text', lambda: '')()!r}"
        for c in controls
        if c.isVisible()
        and not c.accessibleName()
        and type(c).__name__ not in ("QToolBarExtension",)
        and not (isinstance(c, QAbstractButton) and c.text())  # a button's text is its name
        and c.objectName() != "qt_spinbox_lineedit"  # inside a named spin box
    ]
    assert unnamed == []
    text = w.queue_model.index_of(tid).data(Qt.ItemDataRole.AccessibleTextRole)
    assert text.startswith("beach.jpg, running, ") and "percent" in text
    gui.open_gate("a13")


def test_corrupt_database_offers_a_fresh_one_and_keeps_the_old_file(
    harness: Harness, profile_dir: Path
) -> None:
    profile_dir.mkdir(parents=True)
    (profile_dir / "tasks.db").write_bytes(b"not a database" * 100)
    profile = Profile.create(profile_dir)
    app = App(QApplication.instance(), Options(profile=profile_dir), profile)  # type: ignore[arg-type]
    h = harness
    h.app = app  # shut down at teardown if the test fails before it does
    task = asyncio.ensure_future(app.open())
    box = h.message_box("databaseProblem")
    assert box.text() == "tasks.db is not a usable Taskdeck database."
    assert "kept beside it" in box.informativeText()
    h.click(box, "startFresh")
    h.wait(task.done)
    assert task.result() is True
    kept = [p.name for p in profile_dir.iterdir() if p.name.startswith("tasks.db.unusable-")]
    assert len(kept) == 1
    assert (profile_dir / kept[0]).read_bytes().startswith(b"not a database")
    h.run(app.shutdown())


def test_attached_to_a_worker_the_window_says_so_and_follows_its_changes(
    harness: Harness, profile_dir: Path
) -> None:
    profile_dir.mkdir(parents=True)
    db = profile_dir / "tasks.db"
    h = harness
    worker = h.run(Engine.open(db, EngineConfig(max_concurrency=2)))
    h.at_teardown(lambda: worker.stop(grace=0))  # stopped even if the test fails half-way
    register_builtin(worker)
    from tests.desktop import kinds

    kinds.register(worker)
    h.run(worker.start())
    app = App(QApplication.instance(), Options(profile=profile_dir), Profile.create(profile_dir))  # type: ignore[arg-type]
    h.app = app
    assert h.run(app.open())
    w = h.window
    assert w.queue_pane.attach_banner.text().startswith(
        f"Attached to the Taskdeck worker (process {os.getpid()})"
    )
    tid = h.run(worker.submit("test.gate", {"gate": "att"}, label="from the CLI")).id
    h.wait_text(tid, "Running")
    h.wait(lambda: (h.record(tid).progress or 0) > 0)  # progress is polled from the rows
    h.run(worker.set_max_concurrency(3))
    h.wait(lambda: w.concurrency.value() == 3)
    w.queue_pane.select_task(tid)
    w.queue_pane.actions_by_name["pause"].trigger()  # a request in the worker's inbox
    h.wait_text(tid, "Paused")
    h.run(app.shutdown())
    assert not worker._closed  # closing the window leaves the worker running
    h.run(worker.stop(grace=0))


def test_bridge_coalesces_a_burst_into_few_row_precise_flushes(gui: Harness) -> None:
    ids = [gui.submit("test.gate", {"gate": "burst", "tick": 0.001, "total": 10**6}) for i in range(4)]
    for i in ids:
        gui.wait_text(i, "Running")
    bridge = gui.window.bridge
    model = gui.window.queue_model
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    f0, e0, t0 = bridge.flush_count, bridge.events_seen, time.monotonic()
    gui.wait(lambda: bridge.events_seen - e0 >= 1000)
    elapsed_ms = (time.monotonic() - t0) * 1000  # however long a busy machine took
    flushes, events = bridge.flush_count - f0, bridge.events_seen - e0
    assert events > flushes  # progress of 4 tasks at 1 kHz, shown in batches
    assert flushes <= elapsed_ms // FLUSH_MS + 2  # at most one flush per FLUSH_MS
    assert resets == []
    gui.open_gate("burst")


def test_new_job_dialog_builds_a_form_from_the_schema_and_validates_inline(gui: Harness) -> None:
    w = gui.window
    w.new_job("demo.sleep")
    gui.wait(lambda: getattr(w, "new_job_dialog", None) is not None and w.new_job_dialog.isVisible())
    d: NewJobDialog = w.new_job_dialog
    assert d.kind.currentText() == "demo.sleep"
    seconds = d.field("seconds")
    assert isinstance(seconds, QLineEdit)
    seconds.setText("-3")
    assert d.error_text("seconds") == "must be at least 0"
    assert not d.buttons.buttons()[0].isEnabled() or not d.findChild(QAbstractButton, "jobAdd").isEnabled()
    seconds.setText("0.2")
    assert d.error_text("seconds") == ""
    d.label.setText("nap")
    d.findChild(QAbstractButton, "jobAdd").click()
    gui.wait(lambda: any(r.name == "nap" for r in w.queue_model.records()))
    tid = next(r.id for r in w.queue_model.records() if r.name == "nap")
    gui.wait_text(tid, "Completed")


def test_the_generic_job_form_speaks_in_titles_and_does_not_open_in_red(gui: Harness) -> None:
    """The schedule dialog builds every kind's form from its schema: labels are the
    schema's titles (not "Argv*:"), and a required field not yet typed in is a hint."""
    kinds = [k for k in gui.engine.kinds() if k.kind == "command.run"]
    d = NewJobDialog(kinds, "command.run", gui.window)
    form = d.job_form.form
    labels = [
        form.labelForField(form.itemAt(i, QFormLayout.ItemRole.FieldRole).widget())
        for i in range(form.rowCount())
    ]
    texts = [lab.text() for lab in labels if lab is not None]
    assert "Command*:" in texts and "Working folder:" in texts and not any("Argv" in t for t in texts)
    # the kind, its fields and the common rows line up although they are three forms
    d.show()
    QApplication.processEvents()
    starts = {w.mapTo(d, w.rect().topLeft()).x() for w in (d.kind, d.field("argv"), d.field("cwd"), d.label)}
    assert len(starts) == 1, starts
    shell = d.field("shell")
    assert isinstance(shell, QCheckBox) and shell.text() == "Run through the shell"
    error = d.job_form.findChild(QLabel, "error_argv")
    assert d.error_text("argv") == "is required" and error.property("role") == "hint"
    assert not d.field("argv").property("invalid")
    argv = d.field("argv")
    assert isinstance(argv, QLineEdit)
    argv.setText("convert 'my photo.jpg' out.png")  # typed as in a terminal
    job = d.job()
    assert job is not None and job.payload["argv"] == ["convert", "my photo.jpg", "out.png"]
    d.job_form.set_job("command.run", {"argv": ["echo", "a b"]}, label=None, priority=None, group=None)
    assert argv.text() == "echo 'a b'"  # an existing schedule's command reads back the same way
    timeout = d.field("timeout")
    assert isinstance(timeout, QLineEdit)
    timeout.setText("-5")  # typed, and wrong: red
    assert d.error_text("timeout") == "must be more than 0"
    assert d.job_form.findChild(QLabel, "error_timeout").property("role") == "error"
    assert timeout.property("invalid")
    d.reject()


def test_the_generic_form_shows_a_list_it_cannot_join_with_semicolons_as_json_and_reads_it_back(
    gui: Harness,
) -> None:
    """Editing a schedule must not change what it runs: a path holding ';' split at it
    would upload two folders that do not exist."""
    kinds = [k for k in gui.engine.kinds() if k.kind == "resize.images"]
    d = NewJobDialog(kinds, "resize.images", gui.window)
    inputs = d.field("inputs")
    assert isinstance(inputs, QLineEdit)
    for paths in (
        ["/photos/a.jpg", "/photos/b.jpg"],
        ["/trip; day 1/a.jpg", "/b.jpg"],
        [" x", "y"],
        ["[draft].jpg"],
    ):
        d.job_form.set_job(
            "resize.images", {"inputs": paths, "output_dir": "/out"}, label=None, priority=None, group=None
        )
        job = d.job()
        assert job is not None and job.payload["inputs"] == paths, (paths, inputs.text())
    assert inputs.text() == '["[draft].jpg"]'
    inputs.setText("/a.jpg; /b.jpg")  # typed: split at ';'
    assert d.job().payload["inputs"] == ["/a.jpg", "/b.jpg"]
    inputs.setText('["/a;b.jpg"')
    assert d.error_text("inputs").startswith("must be a JSON list")
    d.reject()


def test_other_kind_of_job_offers_no_kind_that_only_runs_as_part_of_another(gui: Harness) -> None:
    from core.jobs import PART_KINDS

    registered = {k.kind for k in gui.engine.kinds()}
    assert registered >= PART_KINDS  # the engine runs them...
    w = gui.window
    w.new_job("")
    gui.wait(lambda: getattr(w, "new_job_dialog", None) is not None and w.new_job_dialog.isVisible())
    d: NewJobDialog = w.new_job_dialog
    offered = {d.kind.itemData(i) for i in range(d.kind.count())}
    assert "demo.sleep" in offered
    assert not offered & PART_KINDS  # ...but a person never submits one alone
    d.reject()


def test_settings_dialog_writes_engine_settings_through_the_engine(gui: Harness) -> None:
    w = gui.window
    gui.submit("test.gate", {"gate": "set"}, group="photos")
    gui.wait(lambda: bool(w.bridge.groups()))
    w.open_settings()
    gui.wait(lambda: getattr(w, "settings_dialog", None) is not None and w.settings_dialog.isVisible())
    d: SettingsDialog = w.settings_dialog
    d.keep.setValue(10000)
    assert d.keep.text() == f"10{d.keep.locale().groupSeparator()}000 entries"  # grouped as its locale groups
    d.concurrency.setValue(2)
    d.keep.setValue(500)
    d.group_spins["photos"].setValue(1)
    d.theme.setCurrentIndex(d.theme.findData("dark"))
    d.accept()
    gui.wait(lambda: gui.engine.max_concurrency == 2 and w.concurrency.value() == 2)
    gui.wait(lambda: w.bridge.status.retention_keep == 500)
    gui.wait(lambda: any(g.name == "photos" and g.limit == 1 for g in w.bridge.groups()))
    assert w.settings.value("theme") == "dark"
    assert w.settings.value("max_concurrency") is None  # engine settings never go in QSettings
    assert QApplication.instance().property("taskdeckTheme") == "dark"
    gui.open_gate("set")
