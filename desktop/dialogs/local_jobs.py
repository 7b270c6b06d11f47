"""New-job dialogs of the local kinds: Resize photos, Copy/Move/Sync a folder, Run a
command (SPEC §5). Each builds the kind's payload; checking and submitting are shared
(job_form.JobDialog)."""

from __future__ import annotations

import asyncio
import os
import shlex
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from core import KindInfo
from core.jobs import files, resize
from core.jobs.presets import Preset
from desktop.bridge import Bridge
from desktop.dialogs.job_form import FieldError, JobDialog, PathEdit, PathsEdit, own, spin
from desktop.views.widgets import name, set_style_property

NO_PRESET = "(no preset)"
FORMAT_TITLES = (("Keep the original", "keep"), ("JPEG", "jpeg"), ("PNG", "png"), ("WebP", "webp"))


class ResizeDialog(JobDialog):
    """Resize photos: inputs, output folder, a preset (or the options one by one)."""

    KIND = resize.KIND

    def __init__(
        self, info: KindInfo | None, bridge: Bridge, presets: list[Preset], parent: QWidget | None = None
    ) -> None:
        super().__init__(info, "Resize photos", "resizeDialog", parent)
        self.bridge = bridge
        self._presets: dict[str, Preset] = {}
        self._filling = False
        self.inputs = PathsEdit("resizeInputs", "Photos and folders to resize")
        self.add_row("inputs", "&Photos:", self.inputs)
        self.output = PathEdit("resizeOutput", "Output folder")
        self.output.edit.setPlaceholderText("the folder for the resized copies (created if missing)")
        self.add_row("output_dir", "&Output folder:", self.output)
        # presets
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        self.preset = QComboBox()
        name(self.preset, "resizePreset", "Preset")
        h.addWidget(self.preset, 1)
        self.save_preset = QPushButton("Save as preset…")
        name(self.save_preset, "resizeSavePreset", "Save these options as a preset")
        self.save_preset.clicked.connect(self._ask_preset_name)
        h.addWidget(self.save_preset)
        self.delete_preset = QPushButton("Delete")
        name(self.delete_preset, "resizeDeletePreset", "Delete this preset")
        self.delete_preset.clicked.connect(self._delete_preset)
        h.addWidget(self.delete_preset)
        self.add_row("preset", "Pre&set:", row)
        self._widgets["preset"] = row
        # options
        self.max_width = spin("resizeMaxWidth", "Largest width in pixels", 0, 65535, "no limit")
        self.add_row("max_width", "Max &width:", self.max_width)
        self.max_height = spin("resizeMaxHeight", "Largest height in pixels", 0, 65535, "no limit")
        self.add_row("max_height", "Max &height:", self.max_height)
        self.percent = QDoubleSpinBox()
        name(self.percent, "resizePercent", "Scale to this percentage")
        self.percent.setRange(0, 1000)
        self.percent.setDecimals(1)
        self.percent.setSuffix(" %")
        self.percent.setSpecialValueText("not set")
        self.add_row("percent", "P&ercent:", self.percent)
        self.format = QComboBox()
        name(self.format, "resizeFormat", "Output format")
        for title, value in FORMAT_TITLES:
            self.format.addItem(title, value)
        self.add_row("format", "&Format:", self.format)
        self.quality = spin("resizeQuality", "JPEG and WebP quality", 1, 100)
        self.quality.setValue(85)
        self.add_row("quality", "&Quality:", self.quality)
        self.name_pattern = QLineEdit()
        name(self.name_pattern, "resizeNamePattern", "Output file name pattern")
        self.name_pattern.setPlaceholderText(resize.DEFAULT_PATTERN)
        self.add_row("name_pattern", "File &names:", self.name_pattern, "{stem} {ext} {index} {width}…")
        self.strip = QCheckBox("Strip metadata (EXIF, XMP, comments; the colour profile stays)")
        name(self.strip, "resizeStrip", "Strip metadata")
        self.add_row("strip_metadata", "", self.strip)
        self.upscale = QCheckBox("Enlarge images smaller than the target")
        name(self.upscale, "resizeUpscale", "Enlarge small images")
        self.add_row("upscale", "", self.upscale)
        self.recursive = QCheckBox("Include photos in subfolders")
        name(self.recursive, "resizeRecursive", "Include subfolders")
        self.add_row("recursive", "", self.recursive)
        self.overwrite = QCheckBox("Replace existing files (otherwise they are skipped)")
        name(self.overwrite, "resizeOverwrite", "Replace existing files")
        self.add_row("overwrite", "", self.overwrite)
        self.preview = QLabel()
        name(self.preview, "resizePreview", "Resulting size of the first photo")
        self.form.addRow("Preview:", self.preview)
        self.for_drops = QCheckBox("Resize files dropped on the window with this preset")
        name(self.for_drops, "resizeForDrops", "Use this preset for dropped files")
        self.form.addRow("", self.for_drops)
        self.set_presets(presets)
        self.preset.currentIndexChanged.connect(lambda _: self._preset_chosen())
        self.finish_layout()

    # -- presets ---------------------------------------------------------------------------

    def set_presets(self, presets: list[Preset], current: str | None = None) -> None:
        current = current if current is not None else self.preset_name()
        self._presets = {p.name: p for p in presets}
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItem(NO_PRESET, "")
        for p in presets:
            self.preset.addItem(p.name + ("" if p.builtin else " (yours)"), p.name)
        i = self.preset.findData(current or "")
        self.preset.setCurrentIndex(max(0, i))
        self.preset.blockSignals(False)
        self._preset_chosen()

    def preset_name(self) -> str:
        return str(self.preset.currentData() or "")

    def choose_preset(self, preset: str) -> None:
        i = self.preset.findData(preset)
        if i >= 0:
            self.preset.setCurrentIndex(i)

    def _preset_chosen(self) -> None:
        p = self._presets.get(self.preset_name())
        self.delete_preset.setEnabled(p is not None and not p.builtin)
        self.for_drops.setEnabled(p is not None)
        if p is None:
            self._changed()
            return
        self._show_options(p.options)
        self._changed()

    def _show_options(self, o: dict[str, Any]) -> None:
        self._filling = True
        try:
            self.max_width.setValue(int(o.get("max_width") or 0))
            self.max_height.setValue(int(o.get("max_height") or 0))
            self.percent.setValue(float(o.get("percent") or 0))
            self.format.setCurrentIndex(max(0, self.format.findData(o.get("format", "keep"))))
            self.quality.setValue(int(o.get("quality", 85)))
            self.name_pattern.setText(str(o.get("name_pattern", "")))
            self.strip.setChecked(bool(o.get("strip_metadata", False)))
            self.upscale.setChecked(bool(o.get("upscale", False)))
            self.recursive.setChecked(bool(o.get("recursive", False)))
            self.overwrite.setChecked(bool(o.get("overwrite", False)))
        finally:
            self._filling = False

    def options(self) -> dict[str, Any]:
        """The resize options the form shows (only those that are set)."""
        o: dict[str, Any] = {"format": self.format.currentData(), "quality": self.quality.value()}
        if self.max_width.value():
            o["max_width"] = self.max_width.value()
        if self.max_height.value():
            o["max_height"] = self.max_height.value()
        if self.percent.value():
            o["percent"] = self.percent.value()
        if self.name_pattern.text().strip():
            o["name_pattern"] = self.name_pattern.text().strip()
        for key, box in (
            ("strip_metadata", self.strip),
            ("upscale", self.upscale),
            ("recursive", self.recursive),
            ("overwrite", self.overwrite),
        ):
            if box.isChecked():
                o[key] = True
        return o

    def _matches_preset(self) -> bool:
        p = self._presets.get(self.preset_name())
        if p is None:
            return False
        full = {"format": "keep", "quality": 85, **p.options}
        return {k: v for k, v in full.items() if v not in (False, None, "")} == self.options()

    def _ask_preset_name(self) -> None:
        box = QInputDialog(self)
        box.setObjectName("presetNameDialog")
        box.setWindowTitle("Save as preset")
        box.setLabelText("Name of the new preset:")
        box.textValueSelected.connect(self.save_as_preset)
        box.finished.connect(lambda _=0: box.deleteLater())
        box.open()

    def save_as_preset(self, preset_name: str) -> None:
        options = self.options()

        async def save() -> None:
            saved = await self.bridge.save_preset(self.KIND, preset_name.strip(), options)
            self.set_presets(await self.bridge.presets(self.KIND), saved.name)

        self.bridge.spawn(save(), "Save preset")

    def _delete_preset(self) -> None:
        preset = self.preset_name()

        async def delete() -> None:
            await self.bridge.delete_preset(self.KIND, preset)
            self.set_presets(await self.bridge.presets(self.KIND), "")

        self.bridge.spawn(delete(), "Delete preset")

    # -- payload ---------------------------------------------------------------------------

    def _changed(self, *args: Any) -> None:
        if self._filling:
            return
        super()._changed(*args)
        self._update_preview()

    def payload(self) -> dict[str, Any]:
        p: dict[str, Any] = {"inputs": self.inputs.paths(), "output_dir": self.output.text()}
        p.update(self.options())
        if not p["inputs"]:
            self.report("inputs", "add photos or folders to resize")
        if not p["output_dir"]:
            self.report("output_dir", "choose a folder for the resized copies")
        if self._matches_preset():
            p["preset"] = self.preset_name()
        return p

    def load(self, payload: dict[str, Any]) -> None:
        self.inputs.set_paths([str(p) for p in payload.get("inputs") or []])
        self.output.setText(str(payload.get("output_dir") or ""))
        self.preset.setCurrentIndex(max(0, self.preset.findData(payload.get("preset") or "")))
        self._show_options(payload)  # the payload's own options, whatever the preset says
        self._changed()

    def default_label(self, payload: dict[str, Any]) -> str | None:
        inputs = payload["inputs"]
        first = os.path.basename(inputs[0].rstrip(os.sep)) or inputs[0]
        more = f" and {len(inputs) - 1} more" if len(inputs) > 1 else ""
        return f"{first}{more}" + (f" — {payload['preset']}" if payload.get("preset") else "")

    def _update_preview(self) -> None:
        first = next((p for p in self.inputs.paths() if os.path.isfile(p)), None)
        if first is None:
            self.preview.setText("add a photo to see its new size")
            return
        try:
            from PIL import Image

            with Image.open(first) as im:  # reads the header only
                w, h = im.size
        except (OSError, ValueError):
            self.preview.setText(f"{os.path.basename(first)}: not an image Pillow can read")
            return
        o = self.options()
        tw, th = resize.target_size(w, h, resize.Options.of(o))
        self.preview.setText(f"{os.path.basename(first)}: {w}×{h} → {tw}×{th}")


MODES = (("Copy", "copy"), ("Move", "move"), ("Sync (skip unchanged files)", "sync"))


class CopyDialog(JobDialog):
    """Copy, move or sync a folder."""

    KIND = "files.copy"

    def __init__(self, info: KindInfo | None, parent: QWidget | None = None) -> None:
        super().__init__(info, "Copy, move or sync a folder", "copyDialog", parent)
        self.source = PathEdit("copySource", "Folder to copy")
        self.add_row("source", "&From:", self.source)
        self.destination = PathEdit("copyDestination", "Destination folder")
        self.add_row("destination", "&To:", self.destination)
        self.mode = QComboBox()
        name(self.mode, "copyMode", "Copy, move or sync")
        for title, value in MODES:
            self.mode.addItem(title, value)
        self.add_row("mode", "&Mode:", self.mode)
        self.verify = QCheckBox("Read every copy back and compare (slower)")
        name(self.verify, "copyVerify", "Verify copies")
        self.add_row("verify", "", self.verify)
        self.delete = QCheckBox("Delete files in the destination that the source no longer has")
        name(self.delete, "copyDelete", "Delete extra files in the destination")
        self.add_row("delete", "", self.delete)
        self.dry_run = QCheckBox("Dry run: change nothing, list what would change")
        name(self.dry_run, "copyDryRun", "Dry run")
        self.add_row("dry_run", "", self.dry_run)
        prow = QWidget()
        ph = QHBoxLayout(prow)
        ph.setContentsMargins(0, 0, 0, 0)
        self.preview_button = QPushButton("Preview changes")
        name(self.preview_button, "copyPreviewButton", "List what this job would change")
        self.preview_button.clicked.connect(self.preview)
        ph.addWidget(self.preview_button)
        self.preview_summary = QLabel()
        name(self.preview_summary, "copyPreviewSummary", "What would change, in numbers")
        ph.addWidget(self.preview_summary, 1)
        self.form.addRow("", prow)
        self.preview_list = QListWidget()
        name(self.preview_list, "copyPreview", "What this job would change")
        self.preview_list.setMaximumHeight(110)
        self.preview_list.hide()
        self.form.addRow("", self.preview_list)
        self.mode.currentIndexChanged.connect(lambda _: self._mode_changed())
        self._mode_changed()
        self.finish_layout()

    def validate(self) -> bool:
        valid = super().validate()
        if hasattr(self, "preview_button"):
            self.preview_button.setEnabled(valid)
        return valid

    def preview(self) -> None:
        """A dry run here and now (in a thread): what would be copied, updated, deleted."""
        job = self.job()
        if job is None:
            return
        p = job.payload
        self.preview_summary.setText("listing…")

        def listing() -> tuple[list[str], str]:
            found = files.list_source(p["source"])
            steps = files.plan(found, p["destination"], p["mode"], False)
            gone = files.extraneous(p["destination"], found) if p.get("delete") else []
            verbs = {"new": "copy", "update": "update", "special": "skip (special file)"}
            lines = [
                f"{verbs[s.action]}: {s.entry.rel}"
                for s in steps
                if s.action in verbs and s.entry.kind != "dir"
            ]
            lines += [f"delete: {g}" for g in gone]
            lines += [f"unreadable: {rel}: {why}" for rel, why in found.errors]
            same = sum(1 for s in steps if s.action == "same" and s.entry.kind != "dir")
            summary = f"{len(lines)} change{'s' if len(lines) != 1 else ''}, {same} unchanged"
            return lines, summary

        async def go() -> None:
            try:
                lines, summary = await asyncio.to_thread(listing)
            except OSError as e:
                self.preview_summary.setText(f"cannot list it: {e}")
                return
            self.preview_list.clear()
            self.preview_list.addItems(lines[:1000])
            self.preview_list.setVisible(bool(lines))
            self.preview_summary.setText(summary)

        own(self, go())

    def _mode_changed(self) -> None:
        sync = self.mode.currentData() == "sync"
        self.delete.setEnabled(sync)
        if not sync:
            self.delete.setChecked(False)

    def payload(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "source": self.source.text(),
            "destination": self.destination.text(),
            "mode": self.mode.currentData(),
        }
        if not p["source"]:
            self.report("source", "choose the folder to copy")
        if not p["destination"]:
            self.report("destination", "choose where to copy it")
        for key, box in (("verify", self.verify), ("dry_run", self.dry_run), ("delete", self.delete)):
            if box.isChecked():
                p[key] = True
        return p

    def load(self, payload: dict[str, Any]) -> None:
        self.source.setText(str(payload.get("source") or ""))
        self.destination.setText(str(payload.get("destination") or ""))
        self.mode.setCurrentIndex(max(0, self.mode.findData(payload.get("mode", "copy"))))
        self.verify.setChecked(bool(payload.get("verify")))
        self.dry_run.setChecked(bool(payload.get("dry_run")))
        self.delete.setChecked(bool(payload.get("delete")))

    def default_label(self, payload: dict[str, Any]) -> str | None:
        verb = {"copy": "Copy", "move": "Move", "sync": "Sync"}[payload["mode"]]
        src = os.path.basename(payload["source"].rstrip(os.sep)) or payload["source"]
        return f"{verb} {src} → {payload['destination']}"


class CommandDialog(JobDialog):
    """Run a program: its arguments, folder, environment, progress pattern."""

    KIND = "command.run"

    def __init__(self, info: KindInfo | None, parent: QWidget | None = None) -> None:
        super().__init__(info, "Run a command", "commandDialog", parent)
        self.command = QLineEdit()
        name(self.command, "commandLine", "Program and arguments")
        self.command.setPlaceholderText("e.g. ffmpeg -i 'my video.mov' out.mp4")
        self.add_row("argv", "&Command:", self.command, "quote arguments with spaces as in a terminal")
        self.argv_preview = QLabel()
        name(self.argv_preview, "commandArgv", "The program and arguments that will run")
        self.argv_preview.setWordWrap(True)
        self.form.addRow("Runs:", self.argv_preview)
        self.shell = QCheckBox("Run through the shell (/bin/sh -c) — pipes, wildcards and $VARS expand")
        name(self.shell, "commandShell", "Run through the shell")
        self.shell.setToolTip(
            "Only for command lines you wrote yourself: the shell runs whatever the text says."
        )
        self.add_row("shell", "", self.shell)
        self.cwd = PathEdit("commandCwd", "Working folder")
        self.cwd.edit.setPlaceholderText("optional")
        self.add_row("cwd", "&Folder:", self.cwd)
        self.env = QPlainTextEdit()
        name(self.env, "commandEnv", "Environment variables")
        self.env.setPlaceholderText("NAME=value, one per line; API_TOKEN=$API_TOKEN takes it from the worker")
        self.env.setFixedHeight(64)
        self.add_row("env", "&Environment:", self.env, "secrets: write $NAME, never the value")
        self.progress = QLineEdit()
        name(self.progress, "commandProgress", "Progress pattern")
        self.progress.setPlaceholderText(r"optional, e.g. (\d+)%")
        self.add_row("progress_regex", "P&rogress:", self.progress)
        self.timeout = spin("commandTimeout", "Time limit in seconds", 0, 604800, "none")
        self.timeout.setSuffix(" s")
        self.add_row("timeout", "&Time limit:", self.timeout)
        self.finish_layout()

    def argv(self) -> list[str]:
        text = self.command.text().strip()
        if not text:
            raise FieldError("argv", "type the program to run")
        if self.shell.isChecked():
            return [text]
        try:
            return shlex.split(text)
        except ValueError as e:
            raise FieldError("argv", f"cannot split it into arguments: {e}") from None

    def _show_argv(self, text: str, role: str) -> None:
        self.argv_preview.setText(text)
        set_style_property(self.argv_preview, "role", role)

    def payload(self) -> dict[str, Any]:
        try:
            argv = self.argv()
            self._show_argv(" · ".join(repr(a) for a in argv), "")
        except FieldError:
            empty = not self.command.text().strip()
            self._show_argv("the program and its arguments, once you type a command" if empty else "", "hint")
            raise
        p: dict[str, Any] = {"argv": argv}
        if self.shell.isChecked():
            p["shell"] = True
        if self.cwd.text():
            p["cwd"] = self.cwd.text()
        env: dict[str, str] = {}
        for n, line in enumerate(self.env.toPlainText().splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise FieldError("env", f"line {n}: write NAME=value")
            env[key.strip()] = value
        if env:
            p["env"] = env
        if self.progress.text().strip():
            p["progress_regex"] = self.progress.text().strip()
        if self.timeout.value():
            p["timeout"] = self.timeout.value()
        return p

    def load(self, payload: dict[str, Any]) -> None:
        argv = [str(a) for a in payload.get("argv") or []]
        shell = bool(payload.get("shell"))
        self.shell.setChecked(shell)
        self.command.setText(argv[0] if shell and len(argv) == 1 else shlex.join(argv))
        self.cwd.setText(str(payload.get("cwd") or ""))
        env = payload.get("env") or {}
        self.env.setPlainText("\n".join(f"{k}={v}" for k, v in env.items()) if isinstance(env, dict) else "")
        self.progress.setText(str(payload.get("progress_regex") or ""))
        self.timeout.setValue(int(payload.get("timeout") or 0))

    def default_label(self, payload: dict[str, Any]) -> str | None:
        return shlex.join(payload["argv"])[:120] if not payload.get("shell") else payload["argv"][0][:120]
