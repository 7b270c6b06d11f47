"""The tray icon (ux A-03/A-04): counts in the tooltip ("2 running · 45 %"), a menu with
Show, Pause all/Resume all and Quit, and close-to-tray, which is only ever offered when a
tray exists and is explained once."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QRectF, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from desktop.views.main_window import MainWindow

logger = logging.getLogger(__name__)

NOTICE = "Still running in the tray — right-click to quit"
NO_TRAY = "No system tray available"
RECHECK_MS = 2000  # a tray host may start after us (both are started at login)


def tray_available() -> bool:
    return QSystemTrayIcon.isSystemTrayAvailable()


def app_icon(paused: bool = False) -> QIcon:
    """Drawn, not shipped: a rounded square with a tick (two bars when paused)."""
    icon = QIcon()
    for size in (16, 22, 24, 32, 48, 64):
        pm = QPixmap(size, size)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        path = QPainterPath()
        m = size * 0.06
        path.addRoundedRect(QRectF(m, m, size - 2 * m, size - 2 * m), size * 0.22, size * 0.22)
        p.fillPath(path, QColor("#7a7f87") if paused else QColor("#2f6fdb"))
        pen = QPen(QColor("white"), max(1.5, size * 0.11))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        p.setPen(pen)
        if paused:
            p.drawLine(int(size * 0.38), int(size * 0.3), int(size * 0.38), int(size * 0.7))
            p.drawLine(int(size * 0.62), int(size * 0.3), int(size * 0.62), int(size * 0.7))
        else:
            p.drawLine(int(size * 0.27), int(size * 0.52), int(size * 0.44), int(size * 0.69))
            p.drawLine(int(size * 0.44), int(size * 0.69), int(size * 0.74), int(size * 0.33))
        p.end()
        icon.addPixmap(pm)
    return icon


def tooltip_text(running: int, percent: int | None) -> str:
    text = f"{running} running"
    return text if percent is None else f"{text} · {percent} %"


class Tray(QObject):
    """The icon, its menu and close-to-tray for one window."""

    def __init__(
        self,
        window: MainWindow,
        settings: QSettings,
        quit_requested: Callable[[], None],
        available: Callable[[], bool] = tray_available,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.settings = settings
        self.available = available
        self.notices: list[str] = []  # what the tray told the user (tests read it)
        self._icons = (app_icon(False), app_icon(True))
        self.icon = QSystemTrayIcon(self._icons[0], self)
        self.icon.setObjectName("trayIcon")
        self.menu = QMenu()
        self.menu.setObjectName("trayMenu")
        self.action_show = QAction("Show Taskdeck", self.menu)
        self.action_show.setObjectName("tray_show")
        self.action_show.triggered.connect(self.show_window)
        self.action_pause = QAction("Pause all", self.menu)
        self.action_pause.setObjectName("tray_pause_all")
        self.action_pause.triggered.connect(self._pause_all)
        self.action_quit = QAction("Quit", self.menu)
        self.action_quit.setObjectName("tray_quit")
        self.action_quit.triggered.connect(quit_requested)
        self.menu.addAction(self.action_show)
        self.menu.addAction(self.action_pause)
        self.menu.addSeparator()
        self.menu.addAction(self.action_quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        window.action_pause_all.changed.connect(self._pause_state)
        window.queue_model.counts_changed.connect(self.refresh)
        self._timer = QTimer(self)  # overall progress moves without count changes
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        self._recheck = QTimer(self)
        self._recheck.setInterval(RECHECK_MS)
        self._recheck.timeout.connect(self.update_visibility)
        self._pause_state()
        self.refresh()
        self.update_visibility()
        self._timer.start()
        self._recheck.start()

    # -- state ---------------------------------------------------------------------------

    def is_shown(self) -> bool:
        return self.icon.isVisible()

    def update_visibility(self) -> None:
        """Show the icon when a tray exists; take the window back when the tray went."""
        if self.available():
            if not self.icon.isVisible():
                logger.info("system tray available: showing the tray icon")
                self.icon.show()
        elif self.icon.isVisible():
            logger.info("the system tray went away")
            self.icon.hide()
            if not self.window.isVisible() and not self.window.allow_close:
                self.window.showMinimized()  # never stranded without a way back

    def close_to_tray_enabled(self) -> bool:
        return str(self.settings.value("closeToTray", "false")).lower() == "true"

    def tooltip(self) -> str:
        w = self.window
        percent = round(w.overall.value() / 10) if not w.overall.isHidden() else None
        return tooltip_text(w.running_count(), percent)

    def refresh(self) -> None:
        text = self.tooltip()
        if self.icon.toolTip() != text:
            self.icon.setToolTip(text)

    def _pause_state(self) -> None:
        paused = self.window.action_pause_all.isChecked()
        self.action_pause.setText("Resume all" if paused else "Pause all")
        self.icon.setIcon(self._icons[1 if paused else 0])

    # -- actions ---------------------------------------------------------------------------

    def _pause_all(self) -> None:
        self.window.action_pause_all.trigger()

    def show_window(self) -> None:
        w = self.window
        if w.isMinimized():
            w.showNormal()
        w.show()
        w.raise_()
        w.activateWindow()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            if self.window.isVisible() and not self.window.isMinimized():
                self.window.hide()
            else:
                self.show_window()

    def close_to_tray(self) -> bool:
        """The window's X: hide into the tray when that is on and a tray exists (telling
        the user once); False lets the window quit as usual."""
        if not (self.close_to_tray_enabled() and self.available() and self.icon.isVisible()):
            return False
        self.window.save_state()
        self.window.hide()
        if str(self.settings.value("trayNoticeShown", "false")).lower() != "true":
            self.settings.setValue("trayNoticeShown", True)
            self.notices.append(NOTICE)
            self.icon.showMessage("Taskdeck", NOTICE, QSystemTrayIcon.MessageIcon.Information, 8000)
            logger.info("tray notice shown")
        return True

    def stop(self) -> None:
        self._timer.stop()
        self._recheck.stop()
        self.icon.hide()
        self.menu.deleteLater()
