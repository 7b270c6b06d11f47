"""ux A-07: one summary per finished batch and one notification per failure, sent to a
(fake) org.freedesktop.Notifications service on a private session bus, or shown as
toasts when there is no bus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.notify import NOTIFY_SIGNATURE, BatchTracker, summary_text
from tests.desktop.conftest import Harness
from tests.desktop.system_parts import fake_notification_service, private_session_bus

SUMMARY = "10 jobs finished: 9 succeeded, 1 failed"


def run_batch_of_ten(gui: Harness) -> None:
    """A gate job holds the batch open while 8 quick jobs and one failing job end."""
    anchor = gui.submit("test.gate", {"gate": "a7"}, label="anchor.bin")
    gui.wait_text(anchor, "Running")
    for i in range(8):
        gui.submit("test.quick", {"n": i}, label=f"photo{i}.jpg")
    failing = gui.submit("test.fail", {"error": "HTTP 500 Internal Server Error"}, label="photo8.jpg")
    gui.wait(lambda: (r := gui.engine.get(failing)) is not None and r.state.value == "failed")
    gui.open_gate("a7")


@pytest.fixture
def notification_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    log = tmp_path / "notify.jsonl"
    with private_session_bus() as address, fake_notification_service(address, log):
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield log


def calls(log: Path) -> list[dict[str, str]]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_A07_one_summary_and_one_failure_notification_over_dbus(notification_log: Path, gui: Harness) -> None:
    notifier = gui.app.integration.notifier
    run_batch_of_ten(gui)
    gui.wait(lambda: len(notifier.log) == 2)
    found = calls(notification_log)
    assert [(c["summary"], c["body"]) for c in found] == [
        ("photo8.jpg failed", "RuntimeError: HTTP 500 Internal Server Error"),
        (SUMMARY, ""),
    ]
    assert all(c["signature"] == NOTIFY_SIGNATURE and c["app_name"] == "Taskdeck" for c in found)
    assert [channel for channel, _ in notifier.log] == ["desktop", "desktop"]
    assert gui.window.toast.text() == ""  # the desktop told the user: no toast as well


def test_A07_without_a_bus_the_same_two_notes_are_toasts(
    gui: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    notifier = gui.app.integration.notifier
    run_batch_of_ten(gui)
    gui.wait(lambda: len(notifier.log) == 2)
    assert [(channel, note.summary) for channel, note in notifier.log] == [
        ("toast", "photo8.jpg failed"),
        ("toast", SUMMARY),
    ]
    assert gui.window.toast.text() == SUMMARY


def test_A07_notifications_off_in_settings_sends_nothing(
    gui: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    gui.window.settings.setValue("notifications", False)
    with gui.qtbot.waitSignal(gui.app.bridge.idle, timeout=30_000):
        task = gui.submit("test.fail", {}, label="x.jpg")
    gui.wait(lambda: (r := gui.engine.get(task)) is not None and r.state.value == "failed")
    with gui.qtbot.waitSignal(gui.app.bridge.idle, timeout=30_000):
        gui.submit("test.quick", {}, label="after.jpg")
    assert gui.app.integration.notifier.log == []
    assert gui.window.toast.text() == ""


def test_A07_summary_wording() -> None:
    assert summary_text(9, 1, 0, 0) == SUMMARY
    assert summary_text(1, 0, 0, 0) == "1 job finished: 1 succeeded"
    assert summary_text(0, 2, 1, 0) == "3 jobs finished: 2 failed, 1 cancelled"
    assert summary_text(2, 0, 0, 1) == "3 jobs finished: 2 succeeded, 1 skipped"


def test_A07_a_batch_whose_only_job_failed_gets_no_second_summary(gui: Harness) -> None:
    tracker = BatchTracker()
    task = gui.submit("test.fail", {}, label="only.jpg")
    gui.wait(lambda: (r := gui.engine.get(task)) is not None and r.state.value == "failed")
    rec = gui.engine.get(task)
    assert rec is not None
    note = tracker.observe(rec)
    assert note is not None and note.summary == "only.jpg failed"
    assert tracker.observe(rec) is None  # the same failure seen twice is told once
    assert tracker.finish() is None


def test_A07_a_bus_without_a_notification_service_falls_back_to_toasts(
    gui: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    with private_session_bus() as address:  # the bus answers ServiceUnknown
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        task = gui.submit("test.fail", {}, label="nobody.jpg")
        notifier = gui.app.integration.notifier
        gui.wait(lambda: notifier.log)
        assert [(c, n.summary) for c, n in notifier.log] == [("toast", "nobody.jpg failed")]
        assert gui.window.toast.text() == "nobody.jpg failed: RuntimeError: HTTP 500 Internal Server Error"
        assert gui.engine.get(task).state.value == "failed"  # type: ignore[union-attr]


def test_A07_a_note_never_takes_the_place_of_an_undo_toast(gui: Harness) -> None:
    w = gui.window
    undone: list[str] = []
    w.toast.action.connect(undone.append)
    w.toast.show_message("Removed 3 entries from history", action="Undo", tag="undo-test", ms=600_000)
    task = gui.submit("test.fail", {}, label="meanwhile.jpg")
    notifier = gui.app.integration.notifier
    gui.wait(lambda: notifier.log)
    assert [(c, n.summary) for c, n in notifier.log] == [("status bar", "meanwhile.jpg failed")]
    assert w.statusBar().currentMessage().startswith("meanwhile.jpg failed")
    assert w.toast.text() == "Removed 3 entries from history" and w.toast.holds_action()
    w.toast.button.click()
    assert undone == ["undo-test"]
    assert gui.engine.get(task).state.value == "failed"  # type: ignore[union-attr]
