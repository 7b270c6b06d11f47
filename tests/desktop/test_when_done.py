"""ux A-05: "When done → Quit" counts down only once every job, children included, has
finished; Cancel keeps the app open; the choice is one-shot and never survives a relaunch.
The countdown's timer never fires here: the test ticks it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QApplication, QDialog

from core import EngineConfig
from desktop.when_done import DO_NOTHING, QUIT, CountdownDialog, queue_done
from tests.desktop.conftest import Harness


def countdown(gui: Harness) -> CountdownDialog | None:
    for w in QApplication.topLevelWidgets():
        if isinstance(w, CountdownDialog) and w.isVisible():
            return w
    return None


def choose_quit(gui: Harness) -> None:
    wd = gui.app.integration.when_done
    wd.tick_ms = 0  # the test ticks
    menu = gui.window.menu_queue.findChild(type(wd.submenu), "menuWhenDone")
    assert menu is wd.submenu
    wd.actions[QUIT].trigger()
    assert wd.choice == QUIT


def test_A05_countdown_only_after_all_jobs_and_children_then_cancel_keeps_the_app(
    make_app: Callable[..., Harness],
) -> None:
    gui = make_app(EngineConfig(max_concurrency=2))
    choose_quit(gui)
    parent = gui.submit("test.parent", {"parts": 2}, label="Upload big.bin")
    other = gui.submit("test.gate", {"gate": "a5-other"}, label="other.bin")
    gui.wait(lambda: len(gui.engine.children(parent)) == 2)
    gui.open_gate("part0")
    gui.open_gate("a5-other")
    gui.wait(lambda: gui.engine.get(other).state.value == "completed")  # type: ignore[union-attr]
    # one child still runs: the parent waits for it, and no countdown shows
    assert gui.engine.get(parent).state.value == "waiting"  # type: ignore[union-attr]
    assert countdown(gui) is None
    with gui.qtbot.waitSignal(gui.app.bridge.idle, timeout=30_000):
        gui.open_gate("part1")
    gui.wait(lambda: countdown(gui) is not None)
    assert gui.engine.get(parent).state.value == "completed"  # type: ignore[union-attr]
    dialog = countdown(gui)
    assert dialog is not None
    assert dialog.label.text() == "Quitting in 30 s"
    for _ in range(3):
        dialog.tick()
    assert dialog.label.text() == "Quitting in 27 s"
    dialog.cancel_button.click()
    gui.wait(lambda: countdown(gui) is None)
    assert not gui.app.bridge.closed and gui.window.isVisible()
    assert gui.app.integration.when_done.choice == DO_NOTHING  # one-shot


def test_A05_idle_during_a_retry_backoff_is_not_done(gui: Harness) -> None:
    choose_quit(gui)
    # fails once, then waits 3 s for its retry: the engine is idle, the queue is not done
    with gui.qtbot.waitSignal(gui.app.bridge.idle, timeout=30_000):
        task = gui.submit("test.retry", {"once": True}, label="flaky.jpg")
        gui.wait(lambda: gui.engine.get(task).attempt == 2)  # type: ignore[union-attr]
    assert gui.engine.get(task).state.value == "pending"  # type: ignore[union-attr]
    assert not queue_done(gui.engine.counts())
    assert countdown(gui) is None
    gui.wait(lambda: countdown(gui) is not None)
    assert gui.engine.get(task).state.value == "completed"  # type: ignore[union-attr]


def test_A05_the_countdown_quits_and_a_relaunch_is_back_to_do_nothing(
    make_app: Callable[..., Harness],
) -> None:
    gui = make_app()
    choose_quit(gui)
    gui.submit("test.quick", {}, label="one.jpg")
    gui.wait(lambda: countdown(gui) is not None)
    dialog = countdown(gui)
    assert dialog is not None
    for _ in range(29):
        dialog.tick()
    assert dialog.label.text() == "Quitting in 1 s" and not gui.app.bridge.closed
    dialog.tick()
    assert dialog.result() == QDialog.DialogCode.Accepted
    gui.wait(lambda: gui.app.bridge.closed)
    again = make_app()
    assert again.app.integration.when_done.choice == DO_NOTHING
    assert again.app.integration.when_done.actions[DO_NOTHING].isChecked()


def test_A05_work_arriving_during_the_countdown_stops_it_until_that_is_done_too(gui: Harness) -> None:
    choose_quit(gui)
    gui.submit("test.quick", {}, label="first.jpg")
    gui.wait(lambda: countdown(gui) is not None)
    late = gui.submit("test.gate", {"gate": "a5-late"}, label="late.jpg")
    gui.wait(lambda: countdown(gui) is None)
    assert gui.app.integration.when_done.choice == QUIT and not gui.app.bridge.closed
    gui.wait_text(late, "Running")
    gui.open_gate("a5-late")
    gui.wait(lambda: countdown(gui) is not None)
    assert gui.engine.get(late).state.value == "completed"  # type: ignore[union-attr]
    countdown(gui).cancel_button.click()  # type: ignore[union-attr]
    gui.wait(lambda: countdown(gui) is None)
