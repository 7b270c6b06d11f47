""" "When done" (ux A-05): a one-shot action for when the whole queue has finished, with a
countdown the user can cancel. Never stored: every launch starts at "Do nothing"."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QMenu, QPushButton, QVBoxLayout, QWidget

from core import TaskState
from desktop.views.widgets import name

logger = logging.getLogger(__name__)

DO_NOTHING, QUIT = "nothing", "quit"
COUNTDOWN_S = 30


def queue_done(counts: dict[str, int]) -> bool:
    """Nothing left to do: no task (parent or child) pending, blocked, running, waiting or
    paused. The engine's idle event alone also fires while a task waits for a retry."""
    return not any(counts.get(s.value, 0) for s in TaskState if s.is_active)


class CountdownDialog(QDialog):
    """ "Quitting in 30 s" with Cancel. One tick a second on its own timer; tests call
    tick() themselves with a timer that never fires (`tick_ms=0`).

    Signals:
        elapsed(): the countdown reached zero (the dialog is then accepted).
    """

    elapsed = Signal()

    def __init__(
        self,
        what: str = "Quit",
        doing: str = "Quitting",
        seconds: int = COUNTDOWN_S,
        tick_ms: int = 1000,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        name(self, "whenDoneDialog", "When done")
        self.setWindowTitle("All jobs finished")
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setMinimumWidth(340)
        self.what = what
        self.doing = doing
        self.remaining = seconds
        lay = QVBoxLayout(self)
        intro = QLabel("All jobs have finished.")
        intro.setObjectName("whenDoneIntro")
        lay.addWidget(intro)
        self.label = QLabel()
        name(self.label, "whenDoneCountdown", "Countdown")
        lay.addWidget(self.label)
        buttons = QDialogButtonBox()
        self.now_button = QPushButton(f"{what} now")
        name(self.now_button, "whenDoneNow", f"{what} now")
        self.cancel_button = QPushButton("Cancel")
        name(self.cancel_button, "whenDoneCancel", "Cancel")
        buttons.addButton(self.now_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.cancel_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        if tick_ms > 0:
            self.timer.start(tick_ms)
        self.finished.connect(self.timer.stop)
        self._show_remaining()

    def _show_remaining(self) -> None:
        text = f"{self.doing} in {self.remaining} s"
        self.label.setText(text)
        self.label.setAccessibleDescription(text)

    def tick(self) -> None:
        if self.remaining <= 0:
            return
        self.remaining -= 1
        self._show_remaining()
        if self.remaining == 0:
            self.timer.stop()
            self.elapsed.emit()
            self.accept()


class WhenDone(QObject):
    """The menu choice and what happens when the queue is done.

    Signals:
        chosen(str): the choice changed (DO_NOTHING or QUIT).
    """

    chosen = Signal(str)

    def __init__(
        self,
        menu: QMenu,
        counts: Callable[[], dict[str, int]],
        quit_app: Callable[[], None],
        parent_window: QWidget | None = None,
        tick_ms: int = 1000,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.counts = counts
        self.quit_app = quit_app
        self.parent_window = parent_window
        self.tick_ms = tick_ms
        self.dialog: CountdownDialog | None = None
        self.submenu = menu.addMenu("When &done")
        self.submenu.setObjectName("menuWhenDone")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.actions: dict[str, QAction] = {}
        for key, title in ((DO_NOTHING, "Do &nothing"), (QUIT, "&Quit Taskdeck")):
            act = QAction(title, self.submenu)
            act.setObjectName(f"action_when_done_{key}")
            act.setCheckable(True)
            act.triggered.connect(lambda _=False, k=key: self.choose(k))
            group.addAction(act)
            self.submenu.addAction(act)
            self.actions[key] = act
        self.actions[DO_NOTHING].setChecked(True)

    @property
    def choice(self) -> str:
        return QUIT if self.actions[QUIT].isChecked() else DO_NOTHING

    def choose(self, key: str) -> None:
        self.actions[key].setChecked(True)
        logger.info("when done: %s", key)
        self.chosen.emit(key)

    def on_idle(self) -> None:
        """The engine went idle: count down if the whole queue is done and we should."""
        if self.choice == DO_NOTHING or self.dialog is not None:
            return
        if not queue_done(self.counts()):
            return
        logger.info("queue done: counting down to quit")
        dialog = CountdownDialog("Quit", "Quitting", COUNTDOWN_S, self.tick_ms, self.parent_window)
        self.dialog = dialog
        dialog.finished.connect(self._finished)
        dialog.open()

    def queue_busy(self) -> None:
        """Work arrived during the countdown (a schedule fired, a job was added): stop
        counting; the choice stands for when that work is done too."""
        dialog, self.dialog = self.dialog, None
        if dialog is None:
            return
        logger.info("when done: new work arrived, countdown stopped")
        dialog.finished.disconnect(self._finished)
        dialog.reject()
        dialog.deleteLater()

    def _finished(self, result: int) -> None:
        dialog, self.dialog = self.dialog, None
        self.choose(DO_NOTHING)  # one-shot, carried out or cancelled
        if dialog is not None:
            dialog.deleteLater()
        if result == QDialog.DialogCode.Accepted:
            logger.info("when done: quitting")
            self.quit_app()
        else:
            logger.info("when done: cancelled")
