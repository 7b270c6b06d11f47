"""ux §4.1, the Queue pane: one test per scenario whose engine part exists, named by its
id, asserting what the user sees."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QApplication

from core import EngineConfig, Priority, RetryPolicy, TaskState
from desktop.models.roles import QueueColumn
from desktop.vocabulary import EtaSmoother
from tests.desktop.conftest import Harness

ETA_WARMUP_S = EtaSmoother()._warmup  # the queue shows "estimating…" until a task ran this long


def test_Q01_empty_state_invites_dropping_files(gui: Harness, qtmodeltester) -> None:
    w = gui.window
    pane = w.queue_pane
    gui.wait(lambda: pane.empty.isVisible())
    assert pane.empty.message() == "Drop files here or click Add"
    assert pane.empty.button.text() == "Add…" and pane.empty.button.isVisible()
    assert w.counts_label.text() == "0 running · 0 queued"
    assert not [
        x
        for x in QApplication.topLevelWidgets()
        if x.isVisible() and x.objectName() not in ("mainWindow", "")
    ]
    qtmodeltester.check(w.queue_model)
    qtmodeltester.check(pane.proxy)
    qtmodeltester.check(w.history_model)
    qtmodeltester.check(w.sidebar.entries)


def test_Q02_dropped_files_become_queued_rows(gui: Harness, tmp_path: Path) -> None:
    files = []
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        f = tmp_path / n
        f.write_bytes(b"x")
        files.append(str(f))
    model = gui.window.queue_model
    model.files_dropped.emit(files)  # what dropping on the view does (dropMimeData)
    gui.wait(lambda: len(model.top_level_ids()) == 3)
    rows = gui.window.queue_pane.visible_rows()
    assert [r[QueueColumn.NAME] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert all(
        r[QueueColumn.STATE] in ("Running", "Queued", "Queued — waiting for a free slot") for r in rows
    )
    gui.wait(lambda: gui.window.counts_label.text().startswith("3 running"))
    gui.open_gate("files")


def test_Q03_progress_speed_and_eta_appear_once_estimable(gui: Harness) -> None:
    tid = gui.submit("test.gate", {"gate": "q3", "total": 50_000_000, "step": 200_000, "tick": 0.05})
    gui.wait_text(tid, "Running")
    gui.wait(lambda: gui.text(tid, QueueColumn.PROGRESS).endswith("%"))
    eta = gui.text(tid, QueueColumn.ETA)
    ran = (datetime.now().astimezone() - gui.record(tid).started_at).total_seconds()
    if ran < ETA_WARMUP_S:  # on a busy machine the first "%" may show after the warm-up
        assert eta == "estimating…"  # no estimate in the first seconds
    gui.wait(lambda: gui.text(tid, QueueColumn.SPEED).endswith("MB/s"))
    gui.wait(lambda: gui.text(tid, QueueColumn.ETA) not in ("", "estimating…"))
    assert gui.text(tid, QueueColumn.ETA).endswith(("s", "min"))
    gui.open_gate("q3")
    gui.wait_text(tid, "Completed")
    assert gui.text(tid, QueueColumn.ETA) == ""


def test_Q04_status_bar_shows_counts_and_overall_progress(make_app) -> None:
    gui = make_app(EngineConfig(max_concurrency=2))
    ids = [gui.submit("test.gate", {"gate": f"q4{i}"}) for i in range(3)]
    gui.wait(lambda: gui.window.counts_label.text() == "2 running · 1 queued")
    gui.wait(lambda: gui.window.overall.isVisible() and gui.window.overall.value() > 0)
    gui.wait_text(ids[2], "Queued — waiting for a free slot")
    for i in range(3):
        gui.open_gate(f"q4{i}")
    gui.wait(lambda: gui.window.counts_label.text() == "0 running · 0 queued")


def test_Q05_pause_and_resume_one_job_keeps_its_progress(gui: Harness) -> None:
    tid = gui.submit("test.gate", {"gate": "q5", "total": 100_000, "step": 50})
    gui.wait(lambda: gui.record(tid) and (gui.record(tid).progress or 0) > 0.01)
    pane = gui.window.queue_pane
    pane.select_task(tid)
    assert pane.actions_by_name["pause"].isEnabled()
    pane.actions_by_name["pause"].trigger()
    gui.wait_text(tid, "Paused")
    shown = gui.text(tid, QueueColumn.PROGRESS)
    gui.qtbot.wait(300)
    assert gui.text(tid, QueueColumn.PROGRESS) == shown
    gui.wait(lambda: pane.actions_by_name["resume"].isEnabled())
    assert not pane.actions_by_name["pause"].isEnabled()
    before = gui.record(tid).progress or 0
    pane.actions_by_name["resume"].trigger()
    gui.wait_text(tid, "Running")
    gui.wait(lambda: (gui.record(tid).progress or 0) > before)
    assert (gui.record(tid).progress or 0) >= before  # it went on from the checkpoint, not from 0
    gui.open_gate("q5")


def test_Q06_pause_all_and_resume_all_leave_individual_pauses(gui: Harness) -> None:
    a = gui.submit("test.gate", {"gate": "q6a"})
    b = gui.submit("test.gate", {"gate": "q6b"})
    c = gui.submit("test.gate", {"gate": "q6c"})
    gui.wait_text(c, "Running")
    gui.run(gui.engine.pause(c))
    gui.wait_text(c, "Paused")
    gui.window.action_pause_all.trigger()
    banner = gui.window.queue_pane.mode_banner
    gui.wait(lambda: banner.text() == "All jobs paused.")
    gui.wait_text(a, "Paused — all jobs paused")
    gui.wait_text(b, "Paused — all jobs paused")
    assert gui.window.action_pause_all.text() == "Resume all"
    gui.window.action_pause_all.trigger()
    gui.wait_text(a, "Running")
    gui.wait_text(b, "Running")
    gui.wait(lambda: not banner.isVisible())
    assert gui.text(c) == "Paused"  # paused by the user: stays paused
    for g in ("q6a", "q6b", "q6c"):
        gui.open_gate(g)


def _queue_of_five(gui: Harness) -> list[int]:
    ids = [gui.submit("test.gate", {"gate": f"j{i}"}, label=f"job {i}") for i in range(1, 6)]
    gui.wait_text(ids[0], "Running")
    gui.wait(lambda: all(gui.record(i) is not None for i in ids))
    return ids


def test_Q07_drag_to_reorder_moves_the_row_keeps_it_selected_and_it_runs_next(make_app) -> None:
    gui = make_app(EngineConfig(max_concurrency=1))
    ids = _queue_of_five(gui)
    pane = gui.window.queue_pane
    model = gui.window.queue_model
    pane.select_task(ids[4])
    mime = model.mimeData([model.index_of(ids[4])])
    row_of_2 = model.top_level_ids().index(ids[1])
    model.dropMimeData(mime, Qt.DropAction.MoveAction, row_of_2, 0, QModelIndex())  # what a drop does
    gui.wait(lambda: model.top_level_ids()[:3] == [ids[0], ids[4], ids[1]])
    assert pane.selected_ids() == [ids[4]]
    names = [r[QueueColumn.NAME] for r in pane.visible_rows()]
    assert names == ["job 1", "job 5", "job 2", "job 3", "job 4"]
    gui.open_gate("j1")
    gui.wait_text(ids[4], "Running")
    assert gui.text(ids[1]).startswith("Queued")
    for i in range(1, 6):
        gui.open_gate(f"j{i}")


def test_Q08_keyboard_reorder_keeps_the_selection(make_app) -> None:
    gui = make_app(EngineConfig(max_concurrency=1))
    ids = _queue_of_five(gui)
    pane = gui.window.queue_pane
    model = gui.window.queue_model
    pane.view.setFocus()
    pane.select_task(ids[3])
    pane.actions_by_name["move_up"].trigger()
    gui.wait(lambda: model.top_level_ids().index(ids[3]) == 2)
    assert pane.selected_ids() == [ids[3]]
    pane.actions_by_name["move_up"].trigger()
    gui.wait(lambda: model.top_level_ids().index(ids[3]) == 1)
    assert pane.selected_ids() == [ids[3]]
    pane.actions_by_name["move_top"].trigger()
    gui.wait(lambda: model.top_level_ids().index(ids[3]) == 1)  # the running job stays first
    gui.wait(lambda: list(model.top_level_ids())[1:3] == [ids[3], ids[1]])
    assert pane.selected_ids() == [ids[3]]
    assert pane.actions_by_name["move_up"].shortcut().toString() == "Alt+Up"
    assert pane.actions_by_name["move_top"].shortcut().toString() == "Ctrl+Home"
    for i in range(1, 6):
        gui.open_gate(f"j{i}")


def test_Q09_run_next_while_sorted_switches_to_queue_order_and_says_so(make_app) -> None:
    gui = make_app(EngineConfig(max_concurrency=1))
    ids = _queue_of_five(gui)
    pane = gui.window.queue_pane
    pane.view.sortByColumn(QueueColumn.NAME, Qt.SortOrder.DescendingOrder)
    assert next(r[QueueColumn.NAME] for r in pane.visible_rows()) == "job 5"
    pane.select_task(ids[3])
    pane.actions_by_name["run_next"].trigger()
    gui.wait(lambda: pane.sort_banner.isVisible())
    assert "queue order" in pane.sort_banner.text()
    assert pane.view.header().sortIndicatorSection() == -1
    gui.wait(lambda: [r[QueueColumn.NAME] for r in pane.visible_rows()][:2] == ["job 1", "job 4"])
    gui.open_gate("j1")
    gui.wait_text(ids[3], "Running")
    for i in range(1, 6):
        gui.open_gate(f"j{i}")


def test_Q11_cancel_a_running_job_confirms_naming_it(gui: Harness) -> None:
    tid = gui.submit("test.gate", {"gate": "q11"}, label="beach.jpg")
    gui.wait_text(tid, "Running")
    pane = gui.window.queue_pane
    pane.select_task(tid)
    pane.actions_by_name["cancel"].trigger()
    box = gui.message_box("confirmCancel")
    assert box.text() == "Cancel “beach.jpg”?"
    assert "running" in box.informativeText()
    gui.click(box, "accept")
    gui.wait_text(tid, "Cancelled")
    gui.window.show_pane(1)
    gui.wait(
        lambda: any(
            r[0] == "beach.jpg" and r[2] == "Cancelled" for r in gui.window.history_pane.visible_rows()
        )
    )


def test_Q12_clear_completed_never_touches_running_or_queued_work(make_app) -> None:
    gui = make_app(EngineConfig(max_concurrency=1))
    done = [gui.submit("test.quick", {"n": i}, label=f"done {i}") for i in range(2)]
    for d in done:
        gui.wait_text(d, "Completed")
    running = gui.submit("test.gate", {"gate": "q12"}, label="running")
    queued = gui.submit("test.gate", {"gate": "q12b"}, label="queued")
    gui.wait_text(running, "Running")
    action = gui.window.queue_pane.actions_by_name["clear_completed"]
    gui.wait(action.isEnabled)
    action.trigger()
    names = [r[QueueColumn.NAME] for r in gui.window.queue_pane.visible_rows()]
    assert names == ["running", "queued"]
    assert gui.text(running) == "Running" and gui.text(queued).startswith("Queued")
    gui.open_gate("q12")
    gui.open_gate("q12b")


def test_Q13_failures_show_their_reason_and_retry_all_requeues_them(gui: Harness) -> None:
    a = gui.submit("test.fail", {"error": "HTTP 500 Internal Server Error"}, label="A.jpg")
    b = gui.submit("test.fail", {"error": "HTTP 500 Internal Server Error"}, label="B.jpg")
    gui.wait_text(a, "Failed — HTTP 500 Internal Server Error")
    gui.wait_text(b, "Failed — HTTP 500 Internal Server Error")
    index = gui.window.queue_model.index_of(a, QueueColumn.STATE)
    assert index.data(Qt.ItemDataRole.ForegroundRole).name() == "#b3261e"  # the error colour
    gui.wait(lambda: gui.window.counts_label.text().endswith("2 failed"))
    assert gui.record(a).attempt == 3 and gui.record(a).max_retries == 2
    gui.window.show_pane(1)
    gui.window.history_pane.retry_all_button.click()
    gui.wait(lambda: len(gui.window.queue_model.top_level_ids()) == 4)
    gui.wait(
        lambda: (
            "Queued 2 failed jobs again" in gui.window.toast.text()
            or sum(1 for r in gui.window.queue_model.records() if r.retry_of in (a, b)) == 2
        )
    )


def test_Q14_automatic_retry_shows_a_countdown_then_completes(gui: Harness) -> None:
    tid = gui.submit("test.retry", {"once": True, "error": "connection reset"}, label="upload.bin")
    gui.wait_text(tid, "Retrying in ")
    text = gui.text(tid)
    assert "(attempt 2 of 5)" in text, text
    gui.wait_text(tid, "Completed")
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.isModal()]


def test_Q16_a_dependent_shows_what_it_waits_for_then_skipped(gui: Harness) -> None:
    resize = gui.submit("test.gate", {"gate": "q16", "fail": "corrupt input"}, label="Resize photo.jpg")
    upload = gui.submit("test.quick", {}, label="Upload photo.jpg", depends_on=[resize])
    gui.wait_text(upload, "Blocked — waiting for “Resize photo.jpg”")
    gui.open_gate("q16")
    gui.wait_text(resize, "Failed — corrupt input")
    gui.wait_text(upload, "Skipped — dependency failed")
    hist = gui.window.history_pane
    gui.window.show_pane(1)
    hist.result_filter.setCurrentText("Skipped")
    gui.wait(lambda: [r[0] for r in hist.visible_rows()] == ["Upload photo.jpg"])


def test_Q17_parts_roll_up_under_their_parent(gui: Harness) -> None:
    parent = gui.submit("test.parent", {"parts": 3}, label="Upload big.bin")
    model = gui.window.queue_model
    gui.wait(lambda: len(model.children_ids(parent)) == 3)
    gui.wait_text(parent, "Waiting for parts")
    index = model.index_of(parent)
    assert model.rowCount(index) == 3
    assert [model.index(r, QueueColumn.NAME, index).data() for r in range(3)] == [
        "part 1",
        "part 2",
        "part 3",
    ]
    gui.open_gate("part0")
    kid = model.children_ids(parent)[0]
    gui.wait_text(kid, "Completed")
    gui.wait(lambda: (gui.record(parent).progress_message or "").startswith("part 2 of 3"))
    gui.open_gate("part1")
    gui.open_gate("part2")
    gui.wait_text(parent, "Completed")


def test_Q18_open_output_folder_opens_the_job_folder(gui: Harness, tmp_path: Path, xdg_open: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = xdg_open
    tid = gui.submit("test.gate", {"gate": "q18", "output_dir": str(out)}, label="resize")
    gui.open_gate("q18")
    gui.wait_text(tid, "Completed")
    pane = gui.window.queue_pane
    pane.select_task(tid)
    action = pane.actions_by_name["open_output"]
    gui.wait(action.isEnabled)
    action.trigger()
    gui.wait(lambda: log.exists() and str(out) in log.read_text())


def test_Q19_details_show_the_job_and_its_log_follows_only_at_the_bottom(gui: Harness) -> None:
    tid = gui.submit(
        "test.gate",
        {"gate": "q19", "password": "hunter2", "total": 1000},
        label="upload.bin",
        priority=Priority.HIGH,
    )
    gui.wait_text(tid, "Running")
    pane = gui.window.queue_pane
    pane.select_task(tid)
    d = gui.window.details
    gui.wait(lambda: d.task_id == tid and d.fields["name"].text() == "upload.bin")
    assert d.fields["priority"].text().startswith("High (64)")
    assert "base High (64)" in d.fields["priority"].text()
    assert d.fields["attempts"].text() == "1 of 1"
    assert "hunter2" not in d.payload.toPlainText() and "••••••" in d.payload.toPlainText()
    gui.open_gate("q19")
    gui.wait_text(tid, "Completed")
    gui.wait(lambda: "gate q19 opened" in d.log.toPlainText())
    assert d.fields["state"].text() == "Completed"  # details stay after completion
    d.copy_log.click()
    assert "gate q19 opened" in QApplication.clipboard().text()
    # the log follows while at the bottom, and stays put when the user scrolled up
    d.log.setPlainText("\n".join(f"line {i}" for i in range(300)))
    bar = d.log.verticalScrollBar()
    bar.setValue(10)
    d._log_cursor = 10**9
    d.log.appendPlainText("x")
    assert bar.value() == 10


def test_Q20_filter_and_search_show_removable_chips(gui: Harness) -> None:
    a = gui.submit("test.fail", {"error": "boom"}, label="beach 1.jpg")
    b = gui.submit("test.fail", {"error": "boom"}, label="city.jpg")
    c = gui.submit("test.gate", {"gate": "q20"}, label="beach 2.jpg")
    gui.wait_text(a, "Failed")
    gui.wait_text(b, "Failed")
    gui.wait_text(c, "Running")
    w = gui.window
    w.search.setText("beach")
    w.sidebar.select("failed")
    pane = w.queue_pane
    gui.wait(lambda: [r[QueueColumn.NAME] for r in pane.visible_rows()] == ["beach 1.jpg"])
    assert pane.chips.chip_texts() == ["Text: “beach”", "State: Failed"]
    assert pane.chips.isVisible()
    assert w.sidebar.text_of("failed") == "Failed  (2)"
    pane.chips.chip("category").click()
    gui.wait(
        lambda: (
            [r[QueueColumn.NAME] for r in pane.visible_rows()] == ["beach 1.jpg", "beach 2.jpg"]
            or sorted(r[QueueColumn.NAME] for r in pane.visible_rows()) == ["beach 1.jpg", "beach 2.jpg"]
        )
    )
    assert pane.chips.chip_texts() == ["Text: “beach”"]
    pane.chips.cleared.emit()
    gui.wait(lambda: len(pane.visible_rows()) == 3)
    assert not pane.chips.isVisible() and w.search.text() == ""
    gui.open_gate("q20")


def test_Q21_a_duplicate_add_is_a_toast_not_a_dialog(gui: Harness, tmp_path: Path) -> None:
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"x")
    model = gui.window.queue_model
    model.files_dropped.emit([str(f)])
    gui.wait(lambda: len(model.top_level_ids()) == 1)
    model.files_dropped.emit([str(f)])
    gui.wait(lambda: gui.window.toast.text() == "“photo.jpg” is already in the queue")
    assert len(model.top_level_ids()) == 1
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.isModal()]
    gui.open_gate("files")


def test_Q22_run_up_to_n_applies_live(make_app) -> None:
    gui = make_app(EngineConfig(max_concurrency=1))
    ids = [gui.submit("test.gate", {"gate": f"q22_{i}"}) for i in range(5)]
    gui.wait(lambda: gui.window.counts_label.text() == "1 running · 4 queued")
    assert gui.window.concurrency.value() == 1
    gui.window.concurrency.setValue(3)
    gui.wait(lambda: gui.window.counts_label.text() == "3 running · 2 queued")
    gui.window.concurrency.setValue(1)
    gui.wait(lambda: gui.engine.max_concurrency == 1)
    gui.open_gate("q22_0")
    gui.wait_text(ids[0], "Completed")
    gui.wait(lambda: gui.window.counts_label.text().startswith("2 running"))
    gui.qtbot.wait(300)  # a window in which a wrong start would show
    assert gui.window.counts_label.text().startswith("2 running")  # no new start until only one runs
    gui.open_gate("q22_1")
    gui.wait(lambda: gui.window.counts_label.text().startswith("1 running"))
    for i in range(5):
        gui.open_gate(f"q22_{i}")


def test_retry_policy_fixture_kinds_are_registered(gui: Harness) -> None:
    kinds = {k.kind for k in gui.window.kinds()}
    assert {"demo.sleep", "test.gate", "test.fail"} <= kinds
    assert RetryPolicy.none().max_retries == 0 and TaskState.PENDING.is_active
