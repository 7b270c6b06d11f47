"""Settings: engine settings (concurrency, group limits, retention) go through the
engine API into the database; window settings (theme, confirmations) go to QSettings."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core import GroupInfo
from desktop.bridge import EngineStatus
from desktop.views.widgets import name

THEME_CHOICES = (("Follow the system", "system"), ("Light", "light"), ("Dark", "dark"))


@dataclass(frozen=True, slots=True)
class UiSettings:
    theme: str = "system"
    confirm_quit: bool = True
    start_minimized: bool = False
    close_to_tray: bool = False
    notifications: bool = True
    start_on_login: bool = False


@dataclass(frozen=True, slots=True)
class SettingsValues:
    max_concurrency: int
    group_limits: dict[str, int | None] = field(default_factory=dict)
    retention_keep: int | None = 10_000
    retention_days: float | None = 90.0
    ui: UiSettings = UiSettings()


class SettingsDialog(QDialog):
    def __init__(
        self,
        status: EngineStatus,
        groups: list[GroupInfo],
        ui: UiSettings,
        parent: QWidget | None = None,
        *,
        tray_available: bool = False,
    ) -> None:
        super().__init__(parent)
        name(self, "settingsDialog", "Settings")
        self.setWindowTitle("Settings")
        self.setMinimumWidth(460)
        lay = QVBoxLayout(self)
        tabs = QTabWidget()
        name(tabs, "settingsTabs", "Settings sections")
        lay.addWidget(tabs)
        # engine
        queue = QWidget()
        form = QFormLayout(queue)
        self.concurrency = QSpinBox()
        name(self.concurrency, "settingsConcurrency", "Run up to this many jobs at once")
        self.concurrency.setRange(1, 1024)
        self.concurrency.setValue(status.max_concurrency)
        self.concurrency.setSuffix(" jobs at once")
        form.addRow("Run &up to:", self.concurrency)
        self.keep = QSpinBox()
        name(self.keep, "settingsKeep", "Keep at most this many finished jobs in history")
        self.keep.setRange(0, 1_000_000)
        self.keep.setSpecialValueText("no limit")
        self.keep.setSuffix(" entries")
        self.keep.setGroupSeparatorShown(True)  # 10,000 entries, not 10000
        self.keep.setValue(status.retention_keep or 0)
        form.addRow("History &keeps:", self.keep)
        self.days = QSpinBox()
        name(self.days, "settingsDays", "Keep finished jobs for this many days")
        self.days.setRange(0, 36500)
        self.days.setSpecialValueText("forever")
        self.days.setSuffix(" days")
        self.days.setValue(round(status.retention_days) if status.retention_days else 0)
        form.addRow("…for at most:", self.days)
        self.group_spins: dict[str, QSpinBox] = {}
        if groups:
            title = QLabel("Groups: how many of a group's jobs may run at once")
            title.setObjectName("settingsGroupsTitle")
            form.addRow(title)
            for g in groups:
                spin = QSpinBox()
                name(spin, f"settingsGroup_{g.name}", f"Limit of group {g.name}")
                spin.setRange(0, 1024)
                spin.setSpecialValueText("no limit of its own")
                spin.setValue(g.limit or 0)
                form.addRow(f"{g.name}:", spin)
                self.group_spins[g.name] = spin
        if status.attached:
            note = QLabel("These settings are sent to the worker that runs the queue.")
            note.setObjectName("settingsAttachedNote")
            form.addRow(note)
        tabs.addTab(queue, "Queue")
        # window
        window = QWidget()
        wform = QFormLayout(window)
        self.theme = QComboBox()
        name(self.theme, "settingsTheme", "Theme")
        for choice, value in THEME_CHOICES:
            self.theme.addItem(choice, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(ui.theme)))
        wform.addRow("&Theme:", self.theme)
        self.confirm_quit = QCheckBox("Ask before quitting while jobs run")
        name(self.confirm_quit, "settingsConfirmQuit", "Ask before quitting while jobs run")
        self.confirm_quit.setChecked(ui.confirm_quit)
        wform.addRow(self.confirm_quit)
        self.start_minimized = QCheckBox("Start minimized")
        name(self.start_minimized, "settingsStartMinimized", "Start minimized")
        self.start_minimized.setChecked(ui.start_minimized)
        wform.addRow(self.start_minimized)
        self.start_on_login = QCheckBox("Start on login (minimized)")
        name(self.start_on_login, "settingsStartOnLogin", "Start on login, minimized")
        self.start_on_login.setChecked(ui.start_on_login)
        wform.addRow(self.start_on_login)
        self.close_to_tray = QCheckBox("Close to the tray: the X keeps Taskdeck running")
        name(self.close_to_tray, "settingsCloseToTray", "Close to the tray")
        self.close_to_tray.setChecked(ui.close_to_tray and tray_available)
        self.close_to_tray.setEnabled(tray_available)
        wform.addRow(self.close_to_tray)
        if not tray_available:
            self.no_tray = QLabel("No system tray available")
            self.no_tray.setObjectName("settingsNoTray")
            self.close_to_tray.setToolTip("No system tray available")
            self.close_to_tray.setAccessibleDescription("No system tray available")
            wform.addRow(self.no_tray)
        self._close_to_tray_stored = ui.close_to_tray
        self.notifications = QCheckBox("Notify when jobs finish or fail")
        name(self.notifications, "settingsNotifications", "Notify when jobs finish or fail")
        self.notifications.setChecked(ui.notifications)
        wform.addRow(self.notifications)
        tabs.addTab(window, "Window")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.setObjectName("settingsButtons")
        name(buttons.button(QDialogButtonBox.StandardButton.Ok), "settingsOk", "Save settings")
        name(buttons.button(QDialogButtonBox.StandardButton.Cancel), "settingsCancel", "Cancel")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def values(self) -> SettingsValues:
        return SettingsValues(
            max_concurrency=self.concurrency.value(),
            group_limits={g: (s.value() or None) for g, s in self.group_spins.items()},
            retention_keep=self.keep.value() or None,
            retention_days=float(self.days.value()) if self.days.value() else None,
            ui=UiSettings(
                theme=str(self.theme.currentData()),
                confirm_quit=self.confirm_quit.isChecked(),
                start_minimized=self.start_minimized.isChecked(),
                # greyed without a tray: the stored choice stays for when there is one
                close_to_tray=(
                    self.close_to_tray.isChecked()
                    if self.close_to_tray.isEnabled()
                    else self._close_to_tray_stored
                ),
                notifications=self.notifications.isChecked(),
                start_on_login=self.start_on_login.isChecked(),
            ),
        )
