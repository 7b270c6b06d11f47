"""ux §4 scenarios about the status bar and resources (Q-10, Q-15, A-14), on the real
window and a real engine; the resource sampler is injected (a fake disk), never psutil."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor

from core import BandwidthStatus, EngineConfig, IoBudget, Priority, TaskRecord, TaskState
from core.resources import RESOURCES, PressureSource
from desktop import theme
from desktop.models.roles import QueueColumn
from desktop.views.resources import Sparkline
from desktop.views.statusbar import limit_mode, overall_progress
from tests.desktop.conftest import Harness

MB = 1_000_000


class FakeDisk:
    """The engine's resource sampler: the bytes/s it reports are the test's to set."""

    def __init__(self, **rates: float) -> None:
        self.rates = dict.fromkeys(RESOURCES, 0.0) | rates
        self.calls = 0

    def __call__(self) -> dict[str, float]:
        self.calls += 1
        return dict(self.rates)


def tooltip(h: Harness, task_id: int) -> str:
    index = h.window.queue_model.index_of(task_id, QueueColumn.STATE)
    return str(index.data(Qt.ItemDataRole.ToolTipRole) or "")


def running(h: Harness) -> int:
    return sum(1 for r in h.engine.tasks() if r.state == TaskState.RUNNING)


def test_Q10_preempted_row_says_so_and_the_notice_goes_when_it_resumes(make_app: Any) -> None:
    h = make_app(EngineConfig(max_concurrency=1, preempt_grace=0.5))
    resize = h.submit("test.gate", {"gate": "resize"}, label="resize batch", priority=Priority.LOW)
    h.wait_text(resize, "Running")
    upload = h.submit("test.gate", {"gate": "upload"}, label="upload.bin", priority=Priority.HIGH)
    h.wait_text(resize, "Paused — preempted by higher-priority job")
    h.wait_text(upload, "Running")
    tip = tooltip(h, resize)
    assert f"#{upload} “upload.bin”" in tip and "resumes by itself" in tip
    h.open_gate("upload")
    h.wait_text(upload, "Completed")
    h.wait_text(resize, "Running")
    assert "preempted" not in tooltip(h, resize)
    rec = h.record(resize)
    assert rec is not None and rec.preempted_by is None and "preempted" not in rec.pause_reasons


def test_Q15_rows_waiting_for_a_busy_disk_say_why_and_the_status_bar_counts_them(make_app: Any) -> None:
    disk = FakeDisk(disk_write=15 * MB)  # a saturated disk: 15 of its 20 MB/s in use
    h = make_app(EngineConfig(max_concurrency=8, resource_sampler=disk))
    h.run(h.engine.set_io_capacity("disk_write", 20 * MB))
    h.wait(lambda: disk.calls >= 1)
    ids = [
        h.submit("test.gate", {"gate": "resize"}, label=f"photo{i}.jpg", io=IoBudget(disk_write=10 * MB))
        for i in range(20)
    ]
    w = h.window
    peak = [0]

    def all_deferred() -> bool:
        peak[0] = max(peak[0], running(h))
        waiting = [i for i in ids if h.text(i) == "Waiting — disk busy (deferred)"]
        return len(waiting) == 19 and w.deferred_label.text() == "19 deferred — disk busy"

    h.wait(all_deferred)  # one runs (no task may starve), the other 19 wait for the disk
    assert w.deferred_label.isVisible()
    assert peak[0] <= 1 and running(h) == 1
    waiting = [i for i in ids if h.text(i) == "Waiting — disk busy (deferred)"]
    tip = tooltip(h, waiting[0])
    assert tip.startswith("Waiting — disk busy (deferred)\nThe disk is busy: disk write at ")
    assert "of its capacity (20 MB/s)" in tip and "starts this one by itself" in tip
    assert "wait for resources" in w.deferred_label.toolTip()
    # the disk frees: the rows start and the notice goes
    disk.rates["disk_write"] = 0.0
    h.run(h.engine.set_io_capacity("disk_write", 1000 * MB))
    h.wait(lambda: not w.deferred_label.isVisible())
    assert not [i for i in ids if h.text(i).startswith("Waiting — disk busy")]


def test_A14_limit_toggle_shows_its_mode_in_text_colour_and_tooltip(make_app: Any) -> None:
    h = make_app()
    toggle = h.window.bandwidth_toggle
    h.window.monitor.sample()
    assert toggle.text() == "Unlimited" and not toggle.isChecked()
    assert toggle.toolTip().startswith("Bandwidth: unlimited.")
    plain = toggle.grab().toImage().pixelColor(QPoint(3, toggle.height() // 2))
    unlimited_icon = toggle.icon().pixmap(16).toImage()

    toggle.click()
    h.wait(lambda: h.engine.bandwidth().limit == 500_000)
    h.wait(lambda: toggle.text() == "Limited 500 KB/s")
    assert toggle.isChecked() and toggle.property("limited") is True
    assert toggle.toolTip().startswith("Bandwidth: limited — network jobs together move at most 500 KB/s")
    accent = toggle.grab().toImage().pixelColor(QPoint(3, toggle.height() // 2))
    expected = QColor("#1d5fbf") if theme.current() == "light" else QColor("#7fb0ff")
    assert accent.name() == expected.name() != plain.name()
    assert toggle.icon().pixmap(16).toImage() != unlimited_icon  # the gauge's needle drops

    toggle.click()
    h.wait(lambda: h.engine.bandwidth().limit is None)
    h.wait(lambda: toggle.text() == "Unlimited")
    assert toggle.property("limited") is False

    # a weekly schedule in force: the toggle overrides it until the window ends
    now = datetime.now().astimezone()
    start, end = (now - timedelta(hours=1)), (now + timedelta(hours=2))
    h.run(h.engine.set_bandwidth_schedule([("mon-sun", f"{start:%H:%M}", f"{end:%H:%M}", 200_000)]))
    h.wait(lambda: toggle.text() == f"Limit 200 KB/s (scheduled until {end:%H:%M})")
    assert toggle.property("limited") is True and "weekly schedule" in toggle.toolTip()
    toggle.click()
    h.wait(lambda: toggle.text() == f"Unlimited — override until {end:%H:%M}")
    bw = h.engine.bandwidth()
    assert bw.limit is None and bw.override_until is not None
    assert f"{bw.override_until.astimezone():%H:%M}" == f"{end:%H:%M}"
    assert "then the schedule applies again" in toggle.toolTip()
    toggle.click()
    h.wait(lambda: toggle.text() == f"Limit 200 KB/s (scheduled until {end:%H:%M})")
    assert h.engine.bandwidth().override_until is None


def test_A14_menu_picks_the_figure_the_toggle_limits_to(make_app: Any) -> None:
    h = make_app()
    toggle = h.window.bandwidth_toggle
    toggle.choose(200_000)
    h.wait(lambda: toggle.text() == "Limited 200 KB/s")
    toggle.click()
    h.wait(lambda: toggle.text() == "Unlimited")
    toggle.click()  # back on at the figure last used
    h.wait(lambda: h.engine.bandwidth().limit == 200_000)


def test_limit_words_for_a_temporary_limit_over_no_schedule() -> None:
    until = datetime(2026, 11, 23, 17, 0).astimezone()
    status = BandwidthStatus(
        limit=300_000,
        source="until 17:00",
        base=None,
        override=300_000,
        override_until=until,
        schedule=(),
        tz=None,
        waiting=0,
    )
    text, tip, limited = limit_mode(status, until - timedelta(hours=1))
    assert text == "Limited 300 KB/s — override until 17:00" and limited
    assert "then the usual limit applies again" in tip


def _rec(**kw: Any) -> TaskRecord:
    base: dict[str, Any] = {
        "id": 1,
        "kind": "k",
        "payload": None,
        "state": TaskState.RUNNING,
        "pause_reasons": (),
        "priority": 128,
        "group": None,
        "tags": {},
        "label": None,
        "key": None,
        "parent_id": None,
        "schedule_id": None,
        "retry_of": None,
        "attempt": 1,
        "max_retries": None,
        "error": None,
        "traceback": None,
        "result": None,
        "progress": None,
        "progress_message": None,
        "bytes_done": None,
        "bytes_total": None,
        "created_at": datetime(2026, 1, 1).astimezone(),
        "started_at": None,
        "finished_at": None,
        "run_at": None,
        "duration": None,
        "io": None,
        "speed": None,
        "eta": None,
    }
    return TaskRecord(**(base | kw))


def test_given_a_big_and_a_small_file_then_overall_progress_weighs_bytes() -> None:
    big = _rec(id=1, progress=0.5, bytes_done=500 * MB, bytes_total=1000 * MB)
    small = _rec(id=2, progress=1.0, bytes_done=1 * MB, bytes_total=1 * MB)
    assert overall_progress([big, small]) == (500 + 1) / 1001
    steps = _rec(id=3, progress=0.25)  # no bytes: weighs the mean size of the others
    assert overall_progress([big, small, steps]) == (500 + 1 + 0.25 * 500.5) / (1001 + 500.5)
    queued = _rec(id=4, state=TaskState.PENDING, progress=0.9)
    assert overall_progress([queued]) is None


def test_sparkline_puts_the_newest_value_at_the_right_edge(qtbot: Any) -> None:
    line = Sparkline()
    qtbot.addWidget(line)
    line.resize(161, 32)
    line.set_values([0.0, 1.0])
    first, last = line.points()
    assert last.x() == 160 and last.y() == 2  # full: the top
    assert first.y() == 30 and first.x() < last.x()


def test_resources_view_shows_pressure_and_io_against_capacity_with_a_live_line(make_app: Any) -> None:
    disk = FakeDisk(disk_write=15 * MB)
    memory = PressureSource("memory", lambda: 0.8)
    h = make_app(EngineConfig(resource_sampler=disk, pressure_sources=(memory,)))
    h.run(h.engine.set_io_capacity("disk_write", 20 * MB))
    w = h.window
    h.wait(lambda: w.monitor.last is not None and w.monitor.last.pressure == 0.8 and disk.calls >= 2)
    w.resources_button.open_view()
    view = w.resources_button.view
    assert view is not None and view.isVisible()
    h.wait(lambda: view.values["disk_write"].text() == "15 MB/s of 20 MB/s (set) (75 %)")
    assert view.values["pressure"].text() == "80% (memory)"
    h.wait(lambda: len(view.lines["disk_write"].values) >= 2)
    assert view.lines["disk_write"].values[-1] == 0.75 and view.lines["pressure"].values[-1] == 0.8
    assert w.resources_button.text() == "IO 75% · pressure 80%"
    view.hide()


def test_io_used_beyond_its_capacity_reads_over_capacity_not_a_huge_percentage() -> None:
    from desktop.bridge import ResourceSample
    from desktop.views.resources import io_text

    sample = ResourceSample(
        live=True,
        pressure=0.0,
        pressure_source=None,
        io={"net_tx": {"used": 145 * MB, "capacity": 500_000.0, "configured": True}},
        bandwidth=None,
    )
    assert io_text(sample, "net_tx") == "145 MB/s of 500 KB/s (set) (over capacity)"


def test_Q15_pressure_and_rate_limits_are_deferrals_too(make_app: Any) -> None:
    level = {"memory": 0.0}
    memory = PressureSource("memory", lambda: level["memory"])
    h = make_app(EngineConfig(resource_sampler=FakeDisk(), pressure_sources=(memory,)))
    w = h.window
    h.run(h.engine.set_rate_limit("kind:test.gate", 0.001, burst=1))
    first = h.submit("test.gate", {"gate": "q15b"}, label="first")
    second = h.submit("test.gate", {"gate": "q15b"}, label="second")
    h.wait_text(first, "Running")
    h.wait_text(second, "Waiting — rate limit (deferred)")
    assert "start-rate limit" in tooltip(h, second)
    h.run(h.engine.set_rate_limit("kind:test.gate", None))
    level["memory"] = 0.9
    h.wait(lambda: h.engine.pressure[0] == 0.9)  # the next sample has read it
    third = h.submit("test.quick", None, label="third")  # normal priority: waits under pressure
    h.wait_text(third, "Waiting — memory pressure (deferred)")
    assert "under memory pressure (90%)" in tooltip(h, third)
    h.wait(lambda: w.deferred_label.text().endswith("deferred — memory pressure"))
    level["memory"] = 0.0
    h.wait_text(third, "Completed")
