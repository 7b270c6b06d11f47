"""Which dialog adds a job of which kind: the built-in kinds have their own (Resize photos,
Copy, Command, Upload, Download); every other kind gets the generic schema form."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QWidget

from core import KindInfo
from desktop import targets
from desktop.bridge import Bridge
from desktop.dialogs.job_form import JobDialog
from desktop.dialogs.local_jobs import CommandDialog, CopyDialog, ResizeDialog
from desktop.dialogs.net_jobs import DownloadDialog, UploadDialog
from desktop.drops import drop_action, remember_drop_action

MENU = (
    ("resize.images", "resize", "&Resize photos…"),
    ("files.copy", "copy", "&Copy, move or sync a folder…"),
    ("command.run", "command", "Run a co&mmand…"),
    ("upload.s3", "upload", "&Upload…"),
    ("download.http", "download", "&Download…"),
)
DEDICATED = frozenset({k for k, _, _ in MENU} | {"upload.http"})
# how the schedule dialog names a kind's own dialog ("Edit in the Upload dialog…")
DIALOG_TITLES = {
    "resize.images": "Resize photos",
    "files.copy": "Copy",
    "command.run": "Command",
    "upload.s3": "Upload",
    "upload.http": "Upload",
    "download.http": "Download",
}


def new_job_menu(parent: QWidget, open_kind: Callable[[str | None], None]) -> QMenu:
    """The Add menu: one entry per built-in kind, then the generic form for the others."""
    menu = QMenu("&New", parent)
    menu.setObjectName("menuNewJob")
    for kind, key, title in MENU:
        act = QAction(title, menu)
        act.setObjectName(f"action_new_{key}")
        act.triggered.connect(lambda _=False, k=kind: open_kind(k))
        menu.addAction(act)
    menu.addSeparator()
    other = QAction("&Other kind of job…", menu)
    other.setObjectName("action_new_other")
    other.triggered.connect(lambda _=False: open_kind(""))
    menu.addAction(other)
    return menu


async def make_dialog(
    kind: str, bridge: Bridge, kinds: list[KindInfo], settings: QSettings, parent: QWidget
) -> JobDialog:
    """The dedicated dialog of built-in `kind`, prefilled with the last choices."""
    info = {k.kind: k for k in kinds}
    if kind == "resize.images":
        dialog: JobDialog = ResizeDialog(info.get(kind), bridge, await bridge.presets(kind), parent)
        assert isinstance(dialog, ResizeDialog)
        dialog.output.setText(str(settings.value("resizeOutputDir", "") or ""))
        dialog.choose_preset(str(settings.value("resizePreset", "") or ""))
        dialog.for_drops.setChecked(_drops_go_to(settings, "resize", dialog.preset_name()))
    elif kind == "files.copy":
        dialog = CopyDialog(info.get(kind), parent)
    elif kind == "command.run":
        dialog = CommandDialog(info.get(kind), parent)
    elif kind in ("upload.s3", "upload.http"):
        dialog = UploadDialog(
            {k: info.get(k) for k in ("upload.s3", "upload.http")}, bridge, targets.load(bridge), parent
        )
        assert isinstance(dialog, UploadDialog)
        dialog.choose_target(str(settings.value("lastUploadTarget", "") or ""))
        dialog.for_drops.setChecked(_drops_go_to(settings, "upload", str(dialog.target.currentData() or "")))
    elif kind == "download.http":
        dialog = DownloadDialog(info.get(kind), parent)
        assert isinstance(dialog, DownloadDialog)
        dialog.output.setText(str(settings.value("downloadFolder", "") or ""))
    else:
        raise ValueError(f"{kind} has no dedicated dialog")
    return dialog


def for_schedule(dialog: JobDialog) -> JobDialog:
    """The dialog as the schedule dialog opens it: its job goes back there, not the queue."""
    dialog.ok.setText("Use this job")
    dialog.ok.setAccessibleName("Use this job for the schedule")
    dialog.schedule_button.hide()
    drops = getattr(dialog, "for_drops", None)
    if drops is not None:  # dropped files go to the queue, not to a schedule
        dialog.form.setRowVisible(drops, False)
    return dialog


def remember(dialog: JobDialog, settings: QSettings) -> None:
    """Keep the choices of an accepted dialog for next time (QSettings: UI state only)."""
    if isinstance(dialog, ResizeDialog):
        settings.setValue("resizeOutputDir", dialog.output.text())
        settings.setValue("resizePreset", dialog.preset_name())
        _remember_drops(settings, "resize", dialog.preset_name(), dialog.for_drops.isChecked())
    elif isinstance(dialog, UploadDialog):
        name = str(dialog.target.currentData() or "")
        settings.setValue("lastUploadTarget", name)
        _remember_drops(settings, "upload", name, dialog.for_drops.isChecked())
    elif isinstance(dialog, DownloadDialog):
        settings.setValue("downloadFolder", dialog.output.text())


def _drops_go_to(settings: QSettings, what: str, name: str) -> bool:
    action = drop_action(settings)
    return bool(name) and action is not None and (action.what, action.name) == (what, name)


def _remember_drops(settings: QSettings, what: str, name: str, checked: bool) -> None:
    """Ticked: dropped files go here from now on; unticked where they went: they no longer do."""
    if checked and name:
        remember_drop_action(settings, what, name)
    elif _drops_go_to(settings, what, name):
        remember_drop_action(settings, None)
