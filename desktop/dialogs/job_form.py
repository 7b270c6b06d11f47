"""What every dedicated New-job dialog shares: a form whose rows carry a message under the
field, a check on every change (the kind's JSON schema, then `core.jobs.validate`, the
same checks the engine runs at submit) that disables "Add to queue" while a field is
wrong, the common Name and Priority fields, and file and folder pickers opened without
exec() (qasync cannot re-enter its loop)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any

import jsonschema
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core import InvalidSubmission, KindInfo
from core.jobs import defaults as kind_defaults
from core.jobs import validate as kind_validate
from desktop.dialogs.new_job import PRIORITIES, JobDialogBase, NewJob, mark_problem, plain_error
from desktop.views.widgets import name


class FieldError(ValueError):
    """A form value that cannot become a payload field (shown under that field)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def field_of(path: str) -> str:
    """The form field an error names: "payload.inputs[2]" -> "inputs", "env.TOKEN" -> "env"."""
    path = path.removeprefix("payload.")
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def own(dialog: QDialog, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run `coro` for `dialog` (a keyring write, a dry-run listing) and cancel it when the
    dialog closes, so it never touches widgets that are gone."""
    task = asyncio.ensure_future(coro)
    tasks: set[asyncio.Task[None]] = dialog.__dict__.setdefault("_owned_tasks", set())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    dialog.finished.connect(lambda _=0: task.cancel())
    return task


def _open_picker(parent: QWidget, title: str, mode: QFileDialog.FileMode, done: Any) -> QFileDialog:
    picker = QFileDialog(parent, title)
    picker.setObjectName("filePicker")
    picker.setFileMode(mode)
    if mode == QFileDialog.FileMode.Directory:
        picker.setOption(QFileDialog.Option.ShowDirsOnly, True)
    picker.filesSelected.connect(lambda files: done(list(files)))
    picker.finished.connect(lambda _=0: picker.deleteLater())
    picker.open()
    return picker


class PathEdit(QWidget):
    """A path typed or picked with "Browse…" (a folder, or a file).

    Signals:
        changed(): the path changed.
    """

    changed = Signal()

    def __init__(self, object_name: str, accessible: str, *, folder: bool = True) -> None:
        super().__init__()
        self.folder = folder
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        name(self.edit, object_name, accessible)
        self.edit.textChanged.connect(lambda _: self.changed.emit())
        lay.addWidget(self.edit, 1)
        self.browse = QPushButton("Browse…")
        name(self.browse, object_name + "Browse", f"Choose: {accessible}")
        self.browse.clicked.connect(self._browse)
        lay.addWidget(self.browse)

    def _browse(self) -> None:
        mode = QFileDialog.FileMode.Directory if self.folder else QFileDialog.FileMode.ExistingFile
        _open_picker(self, self.edit.accessibleName(), mode, self._picked)

    def _picked(self, files: list[str]) -> None:
        if files:
            self.edit.setText(files[0])

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, text: str) -> None:
        self.edit.setText(text)


class PathsEdit(QWidget):
    """A list of files and folders: add files, add a folder, remove the selected ones.

    Signals:
        changed(): the list changed.
    """

    changed = Signal()

    def __init__(self, object_name: str, accessible: str) -> None:
        super().__init__()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        name(self.list, object_name, accessible)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setMinimumHeight(72)
        self.list.setMaximumHeight(120)
        lay.addWidget(self.list, 1)
        buttons = QVBoxLayout()
        for key, title, slot in (
            ("AddFiles", "Add files…", self._add_files),
            ("AddFolder", "Add folder…", self._add_folder),
            ("Remove", "Remove", self._remove),
        ):
            b = QPushButton(title)
            name(b, object_name + key, title.replace("…", ""))
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay.addLayout(buttons)

    def _add_files(self) -> None:
        _open_picker(self, "Add files", QFileDialog.FileMode.ExistingFiles, self.add)

    def _add_folder(self) -> None:
        _open_picker(self, "Add a folder", QFileDialog.FileMode.Directory, self.add)

    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()

    def add(self, paths: list[str]) -> None:
        have = set(self.paths())
        for p in paths:
            if p and p not in have:
                self.list.addItem(p)
                have.add(p)
        self.changed.emit()

    def set_paths(self, paths: list[str]) -> None:
        self.list.clear()
        self.add(paths)

    def paths(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]


class JobDialog(JobDialogBase):
    """A New-job dialog for one kind. Subclasses add rows with `add_row` and build the
    payload in `payload()` (raising FieldError for a value that cannot be read)."""

    KIND = ""

    def __init__(self, info: KindInfo | None, title: str, object_name: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        name(self, object_name, title)
        self.setWindowTitle(title)
        self.setMinimumWidth(560)
        self.schema: dict[str, Any] = (info.schema if info else None) or {}
        self._errors: dict[str, QLabel] = {}
        self._widgets: dict[str, QWidget] = {}
        self._touched: set[str] = set()  # fields the user changed since the dialog opened
        self._reported: dict[str, str] = {}  # what payload() found wrong, by field
        self._job: NewJob | None = None
        self._ready = False
        lay = QVBoxLayout(self)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        lay.addLayout(self.form)
        self.body = lay
        self.label = QLineEdit()
        name(self.label, "jobLabel", "Name shown in the queue")
        self.label.setPlaceholderText("optional: a name to show instead of the default")
        self.priority = QComboBox()
        name(self.priority, "jobPriority", "Priority")
        for t, p in PRIORITIES:
            self.priority.addItem(t, int(p))
        self.priority.setCurrentIndex(2)
        self.problem = QLabel()
        name(self.problem, "jobProblem", "Problem with the job")
        self.problem.setProperty("role", "error")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.buttons = self.make_buttons()

    def finish_layout(self) -> None:
        """Add the common fields and the buttons under the subclass's rows; first check."""
        # one form, so every label lines up
        self.form.addRow("&Name:", self.label)
        self.form.addRow("&Priority:", self.priority)
        self.body.addWidget(self.problem)
        self.body.addWidget(self.buttons)
        self._ready = True
        self.validate()

    # -- rows ----------------------------------------------------------------------------

    def add_row(self, key: str, label: str, widget: QWidget, hint: str = "") -> QWidget:
        """A form row for payload field `key` with its error label (and a hint) under it."""
        holder = QWidget()
        holder.setObjectName(f"row_{key}")
        v = QVBoxLayout(holder)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(2)
        v.addWidget(widget)
        if hint:
            h = QLabel(hint)
            h.setObjectName(f"hint_{key}")
            h.setProperty("role", "hint")
            h.setWordWrap(True)
            v.addWidget(h)
        error = QLabel()
        name(error, f"error_{key}", f"Problem with {label.rstrip(':').replace('&', '')}")
        error.setProperty("role", "error")
        error.setWordWrap(True)
        error.hide()
        v.addWidget(error)
        self._errors[key] = error
        self._widgets[key] = widget
        self.form.addRow(label, holder)
        self.watch(widget, lambda *_: self._touch(key))
        return holder

    def set_row_visible(self, key: str, visible: bool) -> None:
        widget = self._widgets[key]
        holder = widget.parentWidget()
        if holder is not None:
            self.form.setRowVisible(holder, visible)

    def watch(self, widget: QWidget, check: Callable[..., Any] | None = None) -> None:
        """Check the form whenever `widget` changes (or call `check`)."""
        check = check or self._changed
        if isinstance(widget, PathEdit | PathsEdit):
            widget.changed.connect(check)
        elif isinstance(widget, QLineEdit | QPlainTextEdit):
            widget.textChanged.connect(check)
        elif isinstance(widget, QComboBox):
            widget.currentIndexChanged.connect(check)
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(check)
        elif isinstance(widget, QSpinBox | QDoubleSpinBox):
            widget.valueChanged.connect(check)

    def _changed(self, *_: Any) -> None:
        if self._ready:
            self.validate()

    def _touch(self, key: str) -> None:
        """The user changed field `key`: from now on its problems are errors."""
        if self._ready:
            self._touched.add(key)
        self._changed()

    # -- checking ------------------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        """The payload the fields make. A value that is missing or wrong is `report`ed (so
        every field says what it needs at once); FieldError if it cannot be read at all."""
        raise NotImplementedError

    def load(self, payload: dict[str, Any]) -> None:
        """Show an existing job's payload in the fields (the inverse of payload())."""
        raise NotImplementedError

    def load_job(self, job: NewJob) -> bool:
        """Show `job` (a schedule's, say); False if the fields cannot show it exactly: a
        payload this dialog would not make, which only the generic form can edit."""
        self._ready = False  # loading is not the user typing
        try:
            self.load(job.payload)
            self.label.setText(job.label or "")
            self.priority.setCurrentIndex(max(0, self.priority.findData(job.priority)))
        finally:
            self._ready = True
        shown = self.job()
        return shown is not None and shown.kind == job.kind and self._same(shown.payload, job.payload)

    def _same(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Equal payloads, a field left out being equal to the schema's default for it."""
        defaults = {k: s["default"] for k, s in self.schema.get("properties", {}).items() if "default" in s}
        return {**defaults, **a} == {**defaults, **b}

    def report(self, key: str, problem: str) -> None:
        """From payload(): field `key` has `problem` (the first one reported stays)."""
        self._reported.setdefault(key, problem)

    def extra_problems(self) -> dict[str, str]:
        """Problems the kind's checks do not know (a subclass's own fields)."""
        return {}

    def validate(self) -> bool:
        """Check the form; problems show under their fields and disable Add to queue."""
        problems: dict[str, str] = dict(self.extra_problems())
        general = ""
        payload: dict[str, Any] | None = None
        self._reported = {}
        try:
            payload = self.payload()
        except FieldError as e:
            problems.setdefault(e.field, str(e))
        for key, text in self._reported.items():
            problems.setdefault(key, text)
        checked: Any = None
        if payload is not None and not problems:
            # the kind's own checks first: their messages say more than the schema's
            try:
                checked = kind_validate(self.KIND, payload)
            except InvalidSubmission as e:
                key = field_of(e.field)
                text = str(e).split(": ", 1)[1] if ": " in str(e) else str(e)
                if key in self._errors:
                    problems[key] = text
                else:
                    general = str(e)
            for err in jsonschema.Draft202012Validator(self.schema).iter_errors(payload):
                path = [p for p in err.absolute_path if isinstance(p, str)]
                key = path[0] if path else ""
                if not key and err.validator == "required":
                    key = str(err.message).split("'")[1] if "'" in str(err.message) else ""
                if key in self._errors:
                    problems.setdefault(key, plain_error(err))
                else:
                    general = general or plain_error(err)
        for key, label in self._errors.items():
            text = problems.get(key, "")
            label.setText(text)
            label.setVisible(bool(text))
            widget = self._widgets[key]
            target = widget.edit if isinstance(widget, PathEdit) else widget
            if isinstance(widget, PathsEdit):
                target = widget.list
            mark_problem(label, target, wrong=bool(text) and (key in self._touched or not _is_empty(widget)))
        self.problem.setText(general)
        self.problem.setVisible(bool(general))
        valid = checked is not None and not problems and not general
        self.set_valid(valid)
        self._job = self._make_job(checked) if valid else None
        return valid

    def _make_job(self, payload: dict[str, Any]) -> NewJob:
        try:
            options = kind_defaults(self.KIND, payload)
        except InvalidSubmission:
            options = {}
        return NewJob(
            kind=self.KIND,
            payload=payload,
            label=self.label.text().strip() or self.default_label(payload) or options.get("label"),
            priority=int(self.priority.currentData()),
            group=options.get("group"),
            key=options.get("key"),
        )

    def default_label(self, payload: dict[str, Any]) -> str | None:
        return None

    def error_text(self, key: str) -> str:
        label = self._errors.get(key)
        return label.text() if label is not None and not label.isHidden() else ""

    def field(self, key: str) -> QWidget | None:
        return self._widgets.get(key)

    def job(self) -> NewJob | None:
        return self._job if self.validate() else None


def _is_empty(widget: QWidget) -> bool:
    """Nothing entered yet: an empty text field or path, or a list of paths with none."""
    if isinstance(widget, PathsEdit):
        return not widget.paths()
    if isinstance(widget, PathEdit):
        return not widget.edit.text().strip()
    if isinstance(widget, QLineEdit):
        return not widget.text().strip()
    if isinstance(widget, QPlainTextEdit):
        return not widget.toPlainText().strip()
    return False


def spin(object_name: str, accessible: str, low: int, high: int, none: str = "") -> QSpinBox:
    """A spin box; with `none`, its lowest value means "not set" and shows that text."""
    box = QSpinBox()
    name(box, object_name, accessible)
    box.setRange(low, high)
    if none:
        box.setSpecialValueText(none)
    box.setKeyboardTracking(True)
    return box
