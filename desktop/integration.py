"""The window's place on the desktop: tray icon, notifications, "When done" and start on
login, wired to one window and its bridge. The app makes one after the window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QSystemTrayIcon

from desktop import autostart
from desktop.bridge import Bridge, TaskBatch
from desktop.dialogs.settings import UiSettings
from desktop.notify import DesktopNotifications, Notifier
from desktop.tray import Tray, tray_available
from desktop.views.main_window import MainWindow
from desktop.when_done import WhenDone, queue_done

logger = logging.getLogger(__name__)


class Integration(QObject):
    def __init__(
        self,
        window: MainWindow,
        bridge: Bridge,
        settings: QSettings,
        quit_requested: Callable[[], None],
        profile_dir: Path | None = None,
        desktop: DesktopNotifications | None = None,
        tray_check: Callable[[], bool] = tray_available,
        tick_ms: int = 1000,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.bridge = bridge
        self.settings = settings
        self.profile_dir = profile_dir
        self.tray = Tray(window, settings, quit_requested, tray_check, self)
        self.notifier = Notifier(
            self._in_app_note,
            desktop,
            enabled=lambda: str(settings.value("notifications", "true")).lower() != "false",
            parent=self,
        )
        self.when_done = WhenDone(
            window.menu_queue,
            bridge.counts,
            quit_requested,
            window,
            tick_ms,
            self,
        )
        window.close_hook = self.tray.close_to_tray
        window.tray_available = tray_check
        window.ui_settings_saved.connect(self.apply_settings)
        bridge.batch_ready.connect(self._on_batch)
        bridge.idle.connect(self._on_idle)
        # the file on disk is the truth: the user may have removed it by hand
        settings.setValue("startOnLogin", autostart.is_enabled())

    def _in_app_note(self, text: str) -> str:
        """No notification service: the toast, or the tray's balloon while the window is
        hidden in the tray (a toast there would go unseen), or the status bar while the
        toast offers Undo (another toast would commit what Undo would take back)."""
        if not self.window.isVisible() and self.tray.is_shown():
            self.tray.icon.showMessage("Taskdeck", text, QSystemTrayIcon.MessageIcon.Information, 8000)
            return "tray"
        if self.window.toast.holds_action():  # never cut short an Undo
            self.window.statusBar().showMessage(text, 10_000)
            return "status bar"
        self.window.toast.show_message(text, ms=6000)
        return "toast"

    def _on_batch(self, batch: TaskBatch) -> None:
        if batch.upserts:
            self.notifier.observe(list(batch.upserts.values()))
            if any(not r.is_terminal for r in batch.upserts.values()):
                self.when_done.queue_busy()

    def _on_idle(self) -> None:
        try:
            done = queue_done(self.bridge.counts())
        except Exception:  # a closed backend at quit
            logger.warning("could not read the counts at idle", exc_info=True)
            return
        if done:
            self.notifier.queue_done()
        self.when_done.on_idle()

    def apply_settings(self, ui: UiSettings) -> None:
        try:
            if ui.start_on_login and not autostart.is_enabled():
                path = autostart.enable(autostart.launch_command(self.profile_dir))
                logger.info("start on login: wrote %s", path)
            elif not ui.start_on_login and autostart.is_enabled():
                autostart.disable()
                logger.info("start on login: removed %s", autostart.entry_path())
        except OSError as e:
            logger.warning("start on login: %s", e)
            self.window.toast.show_message(f"Could not change start on login: {e}", ms=8000)
        self.settings.setValue("startOnLogin", autostart.is_enabled())

    async def close(self) -> None:
        self.tray.stop()
        await self.notifier.close()
