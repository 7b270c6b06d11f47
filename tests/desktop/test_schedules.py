"""The Schedules pane (ux §4.3, S-01…S-09) on a real engine with an injected clock: no
test sleeps for a schedule to fire, each moves the clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, time
from typing import Any

from PySide6.QtCore import Qt, QTime
from PySide6.QtWidgets import QAbstractButton, QApplication, QMessageBox

from core import BandwidthWindow, EngineConfig, TaskState
from core.testing import FakeClock
from desktop.dialogs.bandwidth import (
    BandwidthDialog,
    LimitGridModel,
    grid_from_windows,
    status_text,
    windows_from_grid,
)
from desktop.dialogs.schedule import ADVANCED, CUSTOM_TEXT, SIMPLE, ScheduleDialog
from desktop.dialogs.simple_trigger import DAILY, WEEKDAYS, SimpleTrigger, simple_from_cron
from desktop.models.roles import QueueColumn
from desktop.models.schedules import SCHEDULE_HEADERS, RunColumn, ScheduleColumn
from desktop.views.main_window import SCHEDULES_PANE
from desktop.views.schedules_pane import SchedulesPane
from tests.desktop.conftest import Harness

LOCAL = datetime.now().astimezone().tzinfo
SATURDAY_NOON = datetime(2026, 1, 10, 12, 0, tzinfo=LOCAL)


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    """A wall time in the machine's zone (what the window shows), as an aware datetime."""
    return datetime(y, mo, d, h, mi).astimezone()


def pane_of(gui: Harness) -> SchedulesPane:
    gui.window.show_pane(SCHEDULES_PANE)
    return gui.window.schedules_pane


def open_dialog(gui: Harness, pane: SchedulesPane, edit: bool = False) -> ScheduleDialog:
    if edit:
        pane.edit_selected()
    else:
        pane.new_schedule()
    gui.wait(lambda: pane.dialog is not None and pane.dialog.isVisible())
    assert pane.dialog is not None
    return pane.dialog


def add(gui: Harness, kind: str, payload: Any = None, **options: Any) -> int:
    return gui.run(gui.engine.schedules.add(kind, payload, **options))


def step(gui: Harness, clock: FakeClock, seconds: float, until: Any) -> None:
    """Move the clock on and wait (on the loop, never sleeping) for `until()`."""
    clock.advance(seconds)
    gui.wait(until)


def visible_boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


# -- S-01 … S-03: the New/Edit dialog ------------------------------------------------------


def test_S01_cron_preview_shows_words_and_next_5_runs_in_the_chosen_zone(make_app) -> None:
    gui = make_app(EngineConfig(clock=FakeClock(SATURDAY_NOON)))
    pane = pane_of(gui)
    d = open_dialog(gui, pane)
    d.tabs.setCurrentIndex(ADVANCED)
    d.cron_edit.setText("0 9,17 * * 1-5")
    assert d.description.text() == "At 09:00 and 17:00, Monday through Friday"
    runs = d.next_run_texts()
    assert len(runs) == 5
    # with the clock on Saturday noon, the first run is the next weekday at 09:00
    assert runs[0].startswith("Mon 2026-01-12 09:00")
    assert runs[1].startswith("Mon 2026-01-12 17:00")
    assert runs[4].startswith("Wed 2026-01-14 09:00")
    d.zone.setCurrentIndex(d.zone.findData("Asia/Tokyo"))
    runs = d.next_run_texts()
    assert runs[0] == "Mon 2026-01-12 09:00 JST"
    d.job_form.kind.setCurrentIndex(d.job_form.kind.findData("test.quick"))
    assert d.save_button.isEnabled()
    d.reject()


def test_S02_invalid_cron_shows_a_field_error_and_disables_save(gui: Harness) -> None:
    pane = pane_of(gui)
    d = open_dialog(gui, pane)
    d.tabs.setCurrentIndex(ADVANCED)
    d.cron_edit.setText("61 * * * *")
    assert d.cron_error.isVisible()
    assert d.cron_error.text() == "minute must be 0–59, got 61"
    assert not d.save_button.isEnabled()
    assert d.description.text() == "" and d.next_run_texts() == []
    assert visible_boxes() == []  # inline, no dialog
    d.cron_edit.setText("0 25 * * *")
    assert d.cron_error.text() == "hour must be 0–23, got 25"
    d.cron_edit.setText("0 9 * *")
    assert "5 fields" in d.cron_error.text()
    assert not d.save_button.isEnabled()
    d.accept()  # Enter on the dialog: refused while invalid
    assert d.isVisible()
    d.cron_edit.setText("0 9 * * *")
    assert not d.cron_error.isVisible()
    d.job_form.kind.setCurrentIndex(d.job_form.kind.findData("test.quick"))
    assert d.save_button.isEnabled()
    d.reject()


def test_S03_simple_and_advanced_round_trip_and_custom_is_never_overwritten(gui: Harness) -> None:
    pane = pane_of(gui)
    d = open_dialog(gui, pane)
    d.name_edit.setText("Morning report")
    d.job_form.kind.setCurrentIndex(d.job_form.kind.findData("test.quick"))
    assert d.tabs.currentIndex() == SIMPLE
    d.repeat.setCurrentIndex(d.repeat.findData(WEEKDAYS))
    d.time_edit.setTime(QTime(9, 0))
    assert d.description.text() == "At 09:00, Monday through Friday"
    d.tabs.setCurrentIndex(ADVANCED)
    assert d.cron_edit.text() == "0 9 * * 1-5"
    d.cron_edit.setText("*/7 * * * *")
    d.tabs.setCurrentIndex(SIMPLE)
    assert d.is_custom()
    assert d.repeat.currentText() == CUSTOM_TEXT
    assert d.custom_label.isVisible() and d.custom_label.text().startswith(CUSTOM_TEXT)
    assert d.description.text() == "Every 7 minutes"
    d.time_edit.setTime(QTime(10, 30))  # a hidden control moves
    assert d.trigger() == ("*/7 * * * *", None, "")
    d.buttons.button(d.buttons.StandardButton.Save).click()
    gui.wait(lambda: any(s.name == "Morning report" for s in gui.engine.schedules.list()))
    s = next(s for s in gui.engine.schedules.list() if s.name == "Morning report")
    assert s.cron == "*/7 * * * *" and s.kind == "test.quick"
    # editing it again: Simple still says custom, Advanced holds the expression
    gui.wait(lambda: pane.model.row_of(s.id) is not None)
    pane.select_schedule(s.id)
    e = open_dialog(gui, pane, edit=True)
    assert e.tabs.currentIndex() == ADVANCED and e.cron_edit.text() == "*/7 * * * *"
    e.tabs.setCurrentIndex(SIMPLE)
    assert e.is_custom()
    # choosing a Simple repetition is an explicit change: only then is the expression replaced
    e.repeat.setCurrentIndex(e.repeat.findData(DAILY))
    assert not e.is_custom() and e.trigger()[0] == "0 9 * * *"
    # an interval cron cannot express is said so in Advanced, never shown as a stale expression
    e.repeat.setCurrentIndex(e.repeat.findData("minutes"))
    e.every_n.setValue(7)
    assert e.trigger() == (None, 420, "")
    e.tabs.setCurrentIndex(ADVANCED)
    assert e.cron_edit.text() == "" and e.cron_note.isVisible()
    assert not e.save_button.isEnabled()
    e.tabs.setCurrentIndex(SIMPLE)
    assert e.trigger() == (None, 420, "") and e.save_button.isEnabled()
    e.reject()


def test_simple_triggers_map_to_cron_both_ways() -> None:
    cases = {
        SimpleTrigger("minutes", 15): "*/15 * * * *",
        SimpleTrigger("minutes", 1): "* * * * *",
        SimpleTrigger("hours", 2): "0 */2 * * *",
        SimpleTrigger("daily", at=time(7, 5)): "5 7 * * *",
        SimpleTrigger("weekdays", at=time(9, 0)): "0 9 * * 1-5",
        SimpleTrigger("weekly", at=time(8, 30), days=frozenset({0, 2, 6})): "30 8 * * 1,3,0",
    }
    for trigger, cron in cases.items():
        assert trigger.cron() == cron
        back = simple_from_cron(cron)
        assert back is not None and back.cron() == cron
    assert SimpleTrigger("minutes", 7).cron() is None  # 7 does not divide an hour:
    assert SimpleTrigger("minutes", 7).every() == 420  # an interval instead
    for custom in ("*/7 * * * *", "0 9 1 * *", "0 9,17 * * 1-5", "0 0 9 * * *"):
        assert simple_from_cron(custom) is None


# -- S-04 … S-06: the list and its actions ----------------------------------------------------


def test_S04_schedule_list_essentials(make_app, qtmodeltester) -> None:
    clock = FakeClock(local(2026, 1, 5, 8, 0))  # a Monday, 08:00 local
    gui = make_app(EngineConfig(clock=clock))
    pane = pane_of(gui)
    assert pane.empty.isVisible() and pane.empty.message().startswith("No schedules yet")
    a = add(gui, "test.quick", {}, name="Morning report", cron="0 9 * * 1-5")
    b = add(gui, "test.quick", {}, name="Sync notes", every=900)
    c = add(gui, "test.quick", {}, name="Nightly backup", cron="0 2 * * *")
    m = pane.model
    gui.wait(lambda: m.rowCount() == 3)
    assert not pane.empty.isVisible()
    assert [m.headerData(i, Qt.Orientation.Horizontal) for i in range(m.columnCount())] == list(
        SCHEDULE_HEADERS
    )
    assert SCHEDULE_HEADERS[:5] == ("On", "Name", "Schedule", "Next run", "Last result")
    assert m.text(a, ScheduleColumn.SCHEDULE) == "At 09:00, Monday through Friday"
    assert m.text(b, ScheduleColumn.SCHEDULE) == "Every 15 min"
    assert m.text(a, ScheduleColumn.NEXT_RUN) == "09:00 (in 1 h 00 min)"
    assert m.text(b, ScheduleColumn.NEXT_RUN) == "08:15 (in 15 min)"
    assert m.text(c, ScheduleColumn.NEXT_RUN) == "Tue 02:00 (in 18 h 00 min)"
    assert m.text(a, ScheduleColumn.LAST_RESULT) == "Never run"
    # disable one with its Enabled box
    row = m.row_of(c)
    assert row is not None
    enabled = m.index(row, ScheduleColumn.ENABLED)
    assert enabled.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert m.setData(enabled, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    gui.wait(lambda: m.text(c, ScheduleColumn.NEXT_RUN) == "Paused")
    assert enabled.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert gui.engine.schedules.get(c).paused  # type: ignore[union-attr]
    # a run that finishes: icon and time in Last result
    step(gui, clock, 15 * 60, lambda: m.text(b, ScheduleColumn.LAST_RESULT).startswith("Completed"))
    assert m.text(b, ScheduleColumn.LAST_RESULT) == "Completed 08:15"
    last = m.index(m.row_of(b), ScheduleColumn.LAST_RESULT)  # type: ignore[arg-type]
    assert last.data(Qt.ItemDataRole.DecorationRole) is not None
    assert m.text(b, ScheduleColumn.RUNS) == "1"
    assert m.text(b, ScheduleColumn.NEXT_RUN) == "08:30 (in 15 min)"
    qtmodeltester.check(m)
    qtmodeltester.check(pane.runs_model)


def test_S05_run_now_queues_a_manual_job_and_keeps_the_next_run(make_app) -> None:
    clock = FakeClock(local(2026, 1, 5, 8, 0))
    gui = make_app(EngineConfig(clock=clock))
    pane = pane_of(gui)
    sid = add(gui, "test.gate", {"gate": "s05"}, name="Upload camera folder", cron="0 9 * * *")
    gui.wait(lambda: pane.model.row_of(sid) is not None)
    pane.select_schedule(sid)
    before = pane.model.text(sid, ScheduleColumn.NEXT_RUN)
    # the context menu offers Run now; it runs the same action
    pane._context_menu(pane.view.visualRect(pane.model.index(0, 1)).center())
    menus = [w for w in QApplication.topLevelWidgets() if w.objectName() == "schedulesMenu" and w.isVisible()]
    assert menus and "Run now" in [act.text() for act in menus[0].actions()]
    menus[0].close()
    pane.actions_by_name["run_now"].trigger()
    w = gui.window
    gui.wait(lambda: any(r.schedule_id == sid for r in w.queue_model.records()))
    rec = next(r for r in w.queue_model.records() if r.schedule_id == sid)
    assert rec.tags.get("trigger") == "manual"
    assert gui.text(rec.id, QueueColumn.NAME) == "Upload camera folder · manual"
    assert pane.model.text(sid, ScheduleColumn.NEXT_RUN) == before
    assert gui.engine.schedules.get(sid).next_fire == local(2026, 1, 5, 9, 0)  # type: ignore[union-attr]
    gui.wait_text(rec.id, "Running")
    gui.wait(lambda: pane.model.text(sid, ScheduleColumn.LAST_RESULT) == "Running now")
    gui.open_gate("s05")
    gui.wait(lambda: pane.model.text(sid, ScheduleColumn.LAST_RESULT) == "Completed 08:00")
    gui.wait(lambda: pane.runs_model.texts(RunColumn.TRIGGER) == ["Run now"])
    assert pane.model.text(sid, ScheduleColumn.NEXT_RUN) == before


def test_S06_a_paused_schedule_fires_nothing_and_resumes_at_the_next_occurrence(make_app) -> None:
    clock = FakeClock(local(2026, 1, 5, 8, 0))
    gui = make_app(EngineConfig(clock=clock))
    pane = pane_of(gui)
    sid = add(gui, "test.quick", {}, name="Upload camera folder", cron="0 * * * *")
    control = add(gui, "test.quick", {}, name="Control", cron="*/30 * * * *")  # proves time moved
    m = pane.model
    gui.wait(lambda: m.text(sid, ScheduleColumn.NEXT_RUN) == "09:00 (in 1 h 00 min)")
    pane.select_schedule(sid)
    assert pane.buttons["toggle"].text() == "Pause"
    pane.buttons["toggle"].click()
    gui.wait(lambda: m.text(sid, ScheduleColumn.NEXT_RUN) == "Paused")
    assert pane.buttons["toggle"].text() == "Resume"
    for n in range(1, 6):  # past 09:00 and 10:00, half an hour at a time
        step(gui, clock, 1800, lambda n=n: m.text(control, ScheduleColumn.RUNS) == str(n))
    assert gui.engine.tasks(schedule_id=sid) == []
    assert gui.run(gui.engine.history(schedule_id=sid)) == []
    assert clock.now() == local(2026, 1, 5, 10, 30)
    pane.buttons["toggle"].click()
    gui.wait(lambda: m.text(sid, ScheduleColumn.NEXT_RUN) == "11:00 (in 30 min)")
    s = gui.engine.schedules.get(sid)
    assert s is not None and not s.paused and s.run_count == 0 and s.missed_runs == 0
    assert gui.engine.tasks(schedule_id=sid) == []  # no burst of back-runs
    step(gui, clock, 1800, lambda: m.text(sid, ScheduleColumn.RUNS) == "1")
    gui.wait(lambda: m.text(sid, ScheduleColumn.LAST_RESULT) == "Completed 11:00")


# -- S-07, S-08: missed and skipped runs ----------------------------------------------------------


def test_S07_missed_runs_are_visible_after_a_restart(make_app, profile_dir) -> None:
    clock = FakeClock(local(2026, 1, 4, 3, 0))  # Sunday 03:00
    gui = make_app(EngineConfig(clock=clock))
    once = add(gui, "test.quick", {}, name="Nightly backup", cron="0 2 * * *", misfire="run_once")
    skip = add(gui, "test.quick", {}, name="Nightly scan", cron="0 2 * * *", misfire="skip")
    gui.close()  # quit the app
    clock.set(local(2026, 1, 6, 3, 0))  # two days later: Monday and Tuesday 02:00 were missed
    gui = make_app(EngineConfig(clock=clock), profile_dir)
    pane = pane_of(gui)
    m = pane.model
    gui.wait(lambda: m.text(once, ScheduleColumn.MISSED) == "Missed 2 runs — ran once at 03:00")
    gui.wait(lambda: m.text(skip, ScheduleColumn.MISSED) == "Missed 2 runs — skipped")
    gui.wait(lambda: m.text(once, ScheduleColumn.LAST_RESULT) == "Completed 03:00")
    assert m.text(skip, ScheduleColumn.LAST_RESULT) == "Never run"
    assert m.text(once, ScheduleColumn.RUNS) == "1" and m.text(skip, ScheduleColumn.RUNS) == "0"
    assert m.text(once, ScheduleColumn.NEXT_RUN) == "Wed 02:00 (in 23 h 00 min)"
    # the catch-up job is in History, tagged
    w = gui.window
    w.show_pane(1)
    gui.wait(lambda: [r[0] for r in w.history_pane.visible_rows()] == ["Nightly backup · catch-up"])
    w.show_pane(SCHEDULES_PANE)
    pane.select_schedule(once)
    gui.wait(lambda: pane.runs_model.texts(RunColumn.TRIGGER) == ["Catch-up"])


def test_S08_overlapping_fires_are_skipped_and_explained(make_app, qtmodeltester) -> None:
    clock = FakeClock(local(2026, 1, 5, 8, 0))
    gui = make_app(EngineConfig(clock=clock))
    pane = pane_of(gui)
    sid = add(gui, "test.gate", {"gate": "s08"}, name="Slow sync", every=60, overlap="skip")
    gui.wait(lambda: pane.model.row_of(sid) is not None)
    pane.select_schedule(sid)
    running = lambda: [r for r in gui.engine.tasks(schedule_id=sid) if r.state == TaskState.RUNNING]  # noqa: E731
    step(gui, clock, 60, lambda: len(running()) == 1)
    skipped = "Skipped — previous run still active"
    step(gui, clock, 60, lambda: pane.runs_model.texts(RunColumn.RESULT).count(skipped) == 1)
    step(gui, clock, 60, lambda: pane.runs_model.texts(RunColumn.RESULT).count(skipped) == 2)
    assert len(gui.engine.tasks(schedule_id=sid)) == 1  # no growing queue
    results = pane.runs_model.texts(RunColumn.RESULT)
    assert results == ["Running", skipped, skipped]
    qtmodeltester.check(pane.runs_model)
    gui.open_gate("s08")
    gui.wait(lambda: "Completed" in pane.runs_model.texts(RunColumn.RESULT))


# -- S-09: the bandwidth grid ----------------------------------------------------------------------


def test_S09_weekly_bandwidth_grid_sets_the_limit_in_force(make_app, profile_dir) -> None:
    clock = FakeClock(local(2026, 1, 7, 10, 0))  # Wednesday 10:00
    gui = make_app(EngineConfig(clock=clock))
    pane = pane_of(gui)
    assert pane.bandwidth_label.text() == "Bandwidth: Unlimited"
    pane.bandwidth_button.click()
    gui.wait(lambda: pane.bandwidth_dialog is not None and pane.bandwidth_dialog.isVisible())
    d = pane.bandwidth_dialog
    assert isinstance(d, BandwidthDialog)
    d.select(range(5), 9, 17)  # Mon–Fri 09:00–17:00
    d.limit.setValue(200)
    d.apply_button.click()
    assert d.model.grid[2][9] == 200_000 and d.model.grid[2][17] is None and d.model.grid[5][10] is None
    d.accept()
    gui.wait(lambda: bool(gui.engine.bandwidth().schedule))
    bw = gui.engine.bandwidth()
    assert bw.schedule == (BandwidthWindow.of(([0, 1, 2, 3, 4], "09:00", "17:00", 200_000)),)
    assert bw.limit == 200_000 and bw.source == "schedule"
    gui.wait(lambda: pane.bandwidth_label.text() == "Bandwidth: Limit 200 KB/s (scheduled until 17:00)")
    # an upload running in the window keeps to the limit (measured on the injected clock)
    moved = measure_transfer(gui, clock, seconds=10)
    assert 180_000 <= moved / 10 <= 220_000
    # an override until the window ends ("the limit toggle")
    gui.run(gui.engine.set_bandwidth_limit(None, until=local(2026, 1, 7, 17, 0)))
    gui.wait(lambda: pane.bandwidth_label.text() == "Bandwidth: Unlimited — override until 17:00")
    gui.run(gui.engine.set_bandwidth_limit(None))
    gui.close()
    # started mid-window, the limit applies at once
    gui = make_app(EngineConfig(clock=clock), profile_dir)
    pane = pane_of(gui)
    assert gui.engine.bandwidth().limit == 200_000
    gui.wait(lambda: pane.bandwidth_label.text() == "Bandwidth: Limit 200 KB/s (scheduled until 17:00)")
    # and the grid shows what is stored
    pane.bandwidth_button.click()
    gui.wait(lambda: pane.bandwidth_dialog is not None and pane.bandwidth_dialog.isVisible())
    d2 = pane.bandwidth_dialog
    assert d2 is not None and d2.model.grid[0][9:17] == [200_000] * 8 and d2.model.grid[0][8] is None
    d2.reject()


CHUNK = 16 * 1024


async def _upload(ctx: Any, payload: dict[str, Any]) -> int:
    """A network-like handler: draws each chunk from the bandwidth budget, counts it."""
    sent = 0
    for _ in range(int(payload["chunks"])):
        await ctx.throttle(CHUNK)
        sent += CHUNK
        SENT[ctx.id] = sent
    return sent


SENT: dict[int, int] = {}


def measure_transfer(gui: Harness, clock: FakeClock, seconds: int) -> int:
    """Bytes an upload moves in `seconds` of the engine's clock, stepped 0.1 s at a time."""
    SENT.clear()
    gui.engine.register("test.upload", _upload)
    task_id = gui.submit("test.upload", {"chunks": 10_000}, label="holiday-video.mp4")
    gui.wait(lambda: SENT.get(task_id, 0) > 0 and gui.engine.bandwidth().waiting == 1)

    async def run() -> int:
        start = SENT[task_id]
        for _ in range(seconds * 10):
            clock.advance(0.1)
            for _ in range(10):
                await asyncio.sleep(0)
        return SENT[task_id] - start

    moved = gui.run(run())
    gui.run(gui.engine.cancel(task_id))
    return moved


def test_bandwidth_grid_model_and_window_conversion(qtmodeltester) -> None:
    grid: list[list[float | None]] = [[None] * 24 for _ in range(7)]
    for day in range(5):
        for hour in range(9, 17):
            grid[day][hour] = 200_000
    for hour in range(0, 24):
        grid[6][hour] = 1_000_000
    windows = windows_from_grid(grid)
    assert windows == [([0, 1, 2, 3, 4], "09:00", "17:00", 200_000), ([6], "00:00", "24:00", 1_000_000)]
    assert grid_from_windows([BandwidthWindow.of(w) for w in windows]) == grid
    model = LimitGridModel(grid)
    qtmodeltester.check(model)
    assert model.index(0, 9).data() == "200"
    assert model.index(0, 9).data(Qt.ItemDataRole.ToolTipRole) == "Mon 09:00–10:00: 200 KB/s"


def test_bandwidth_status_text_names_the_source() -> None:
    from core.bandwidth import BandwidthPolicy

    policy = BandwidthPolicy(schedule=(BandwidthWindow.of(("mon-fri", "09:00", "17:00", 200_000)),))
    wed_10 = local(2026, 1, 7, 10, 0)
    assert (
        status_text(policy.status(wed_10.timestamp(), None), wed_10)
        == "Limit 200 KB/s (scheduled until 17:00)"
    )
    wed_18 = local(2026, 1, 7, 18, 0)
    assert status_text(policy.status(wed_18.timestamp(), None), wed_18) == "Unlimited"
    evening = BandwidthWindow.of(("mon-fri", "17:00", "19:00", 500_000))
    both = BandwidthPolicy(schedule=(*policy.schedule, evening))
    assert (
        status_text(both.status(wed_10.timestamp(), None), wed_10) == "Limit 200 KB/s (scheduled until 17:00)"
    )
    assert (
        status_text(both.status(wed_18.timestamp(), None), wed_18) == "Limit 500 KB/s (scheduled until 19:00)"
    )
    policy.base = 2_000_000
    assert status_text(policy.status(wed_18.timestamp(), None), wed_18) == "Limit 2 MB/s"


def test_delete_asks_first_and_keeps_the_runs_in_history(make_app) -> None:
    clock = FakeClock(local(2026, 1, 5, 8, 0))
    gui = make_app(EngineConfig(clock=clock))
    pane = pane_of(gui)
    sid = add(gui, "test.quick", {}, name="Old report", cron="0 9 * * *")
    gui.wait(lambda: pane.model.row_of(sid) is not None)
    pane.select_schedule(sid)
    pane.actions_by_name["run_now"].trigger()
    gui.wait(lambda: pane.model.text(sid, ScheduleColumn.LAST_RESULT) == "Completed 08:00")
    pane.buttons["delete"].click()
    box = gui.message_box("confirmDeleteSchedule")
    assert "Old report" in box.text()
    delete = box.findChild(QAbstractButton, "accept")
    assert delete.property("destructive") and box.defaultButton() is not delete  # Enter cancels
    gui.click(box, "cancel")
    gui.wait(lambda: not box.isVisible())
    assert gui.engine.schedules.get(sid) is not None and pane.model.row_of(sid) is not None
    pane.buttons["delete"].click()
    gui.click(gui.message_box("confirmDeleteSchedule"), "accept")
    gui.wait(lambda: pane.model.row_of(sid) is None)
    assert gui.engine.schedules.get(sid) is None
    assert [r.name for r in gui.run(gui.engine.history(schedule_id=sid))] == ["Old report"]
    assert pane.empty.isVisible()
