"""ux §4.2, the History pane."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from PySide6.QtCore import Qt

from core import EngineConfig
from core.testing import FakeClock
from desktop.models.roles import HistoryColumn


def test_H01_state_filter_and_date_range(make_app, qtmodeltester) -> None:
    now = datetime.now().astimezone()
    clock = FakeClock(now - timedelta(days=10))
    gui = make_app(EngineConfig(clock=clock))
    old = [gui.submit("test.quick", {"n": i}, label=f"old {i}") for i in range(3)]
    gui.open_gate("h1")
    old_fail = gui.submit("test.gate", {"gate": "h1", "fail": "disk full"}, label="old failure")
    for i in old:
        gui.wait_text(i, "Completed")
    gui.wait(lambda: (r := gui.engine.get(old_fail)) is not None and r.state.value == "failed")
    clock.set(now)
    recent = gui.submit("test.gate", {"gate": "h1", "fail": "HTTP 500"}, label="recent failure")
    done = gui.submit("test.quick", {}, label="recent ok")
    gui.wait(lambda: (r := gui.engine.get(recent)) is not None and r.state.value == "failed")
    gui.wait_text(done, "Completed")
    w = gui.window
    w.show_pane(1)
    hist = w.history_pane
    gui.wait(lambda: len(hist.visible_rows()) == 6)
    qtmodeltester.check(w.history_model)
    hist.result_filter.setCurrentText("Failed")
    hist.date_filter.setCurrentText("Last 7 days")
    gui.wait(lambda: [r[HistoryColumn.NAME] for r in hist.visible_rows()] == ["recent failure"])
    row = hist.visible_rows()[0]
    assert row[HistoryColumn.RESULT] == "Failed" and row[HistoryColumn.REASON] == "HTTP 500"
    assert row[HistoryColumn.FINISHED].startswith(now.strftime("%Y-%m-%d"))
    assert w.history_model.headerData(HistoryColumn.FINISHED, Qt.Orientation.Horizontal) == "Finished"
    hist.date_filter.setCurrentText("Any time")
    gui.wait(lambda: len(hist.visible_rows()) == 2)
    assert [r[0] for r in hist.visible_rows()] == ["recent failure", "old failure"]
    hist.view.sortByColumn(HistoryColumn.FINISHED, Qt.SortOrder.AscendingOrder)
    assert [r[0] for r in hist.visible_rows()] == ["old failure", "recent failure"]


def test_H02_clear_history_states_the_count_and_can_be_undone(gui, tmp_path: Path) -> None:
    ids = [gui.submit("test.quick", {"n": i}, label=f"job {i}") for i in range(10)]
    running = gui.submit("test.gate", {"gate": "h2"}, label="still running")
    for i in ids:
        gui.wait_text(i, "Completed")
    gui.wait_text(running, "Running")  # (it may start after the others end, on a loaded machine)
    w = gui.window
    w.show_pane(1)
    hist = w.history_pane
    gui.wait(lambda: len(hist.visible_rows()) == 10)
    hist.clear_button.click()
    box = gui.message_box("confirmClearHistory")
    assert box.text() == "Remove 10 entries from history?"
    gui.click(box, "accept")
    gui.wait(lambda: hist.visible_rows() == [] and w.toast.text() == "Removed 10 entries from history")
    assert hist.empty.message() == "No finished jobs yet."
    assert w.toast.button.text() == "Undo"
    w.toast.button.click()
    gui.wait(lambda: len(hist.visible_rows()) == 10)
    assert gui.text(running) == "Running"
    # clearing again, and letting the toast expire, deletes them for good
    hist.clear_button.click()
    gui.click(gui.message_box("confirmClearHistory"), "accept")
    gui.wait(lambda: w.toast.isVisible())
    w.toast.flush()
    gui.wait(lambda: gui.run(gui.engine.history(limit=None)) == [])
    assert gui.text(running) == "Running"
    # export works on what is left (nothing) and on new rows
    gui.open_gate("h2")
    gui.wait_text(running, "Completed")
    out = tmp_path / "h.json"
    assert gui.run(hist.export_to(out, "json")) == 1
    assert json.loads(out.read_text())[0]["name"] == "still running"
    assert gui.run(hist.export_to(tmp_path / "h.csv", "csv")) == 1
    assert (tmp_path / "h.csv").read_text().splitlines()[0].startswith("id,name,kind,state")


def test_H03_retention_keeps_the_newest_entries(gui) -> None:
    w = gui.window
    w.show_pane(1)
    hist = w.history_pane
    hist.keep.setValue(5)
    hist.keep.editingFinished.emit()
    gui.wait(lambda: w.bridge.status.retention_keep == 5)
    ids = [gui.submit("test.quick", {"n": i}, label=f"job {i}") for i in range(8)]
    for i in ids:
        gui.wait_text(i, "Completed")
    gui.wait(lambda: [r[0] for r in hist.visible_rows()] == [f"job {i}" for i in range(7, 2, -1)])


def test_given_a_job_selected_in_each_pane_when_switching_panes_then_toolbar_and_details_follow_the_pane(
    gui,
) -> None:
    done = gui.submit("test.quick", {}, label="finished job")
    running = gui.submit("test.gate", {"gate": "switch"}, label="running job")
    gui.wait_text(done, "Completed")
    gui.wait_text(running, "Running")
    w = gui.window
    a = w.queue_pane.actions_by_name
    w.queue_pane.select_task(running)
    gui.wait(lambda: w.details.task_id == running)
    assert a["pause"].isEnabled() and a["cancel"].isEnabled()

    w.show_pane(1)
    hist = w.history_pane
    gui.wait(lambda: len(hist.visible_rows()) == 1)
    # Nothing is selected on History yet: the details do not keep the Queue's job.
    assert w.details.task_id is None
    assert w.details.title.text() == "No job selected"
    hist.select_row(0)
    gui.wait(lambda: w.details.task_id == done)
    # The toolbar's job actions act on the Queue's selection, which is not on show.
    for key in ("pause", "resume", "cancel", "retry", "priority_up", "priority_down", "run_next"):
        assert not a[key].isEnabled(), key
    a["cancel"].trigger()  # a disabled action does nothing (a shortcut cannot reach it either)
    gui.wait(lambda: w.details.task_id == done)
    assert (r := gui.engine.get(running)) is not None and r.state.value == "running"

    w.show_pane(2)  # Schedules, no run selected
    assert w.details.task_id is None

    w.show_pane(1)
    assert w.details.task_id == done
    w.show_pane(0)
    assert w.details.task_id == running
    assert a["pause"].isEnabled() and a["cancel"].isEnabled()
    gui.open_gate("switch")
    gui.wait_text(running, "Completed")
