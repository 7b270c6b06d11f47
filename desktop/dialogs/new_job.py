"""New job: pick a kind, fill a form generated from its payload schema, with inline
validation (the schema the engine checks at submit). Every registered kind can be queued
from here before it has a dialog of its own."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

import jsonschema
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLayoutItem,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from core import KindInfo, Priority
from core.jobs.net import common as net_common
from desktop.views.widgets import name, set_style_property

PRIORITIES = (
    ("Critical", Priority.CRITICAL),
    ("High", Priority.HIGH),
    ("Normal", Priority.NORMAL),
    ("Low", Priority.LOW),
    ("Idle", Priority.IDLE),
)
_UNSET = object()


@dataclass(frozen=True, slots=True)
class NewJob:
    kind: str
    payload: dict[str, Any]
    label: str | None
    priority: int
    group: str | None
    key: str | None = None  # the dedup key (dedicated dialogs fill the kind's default)


def _joinable(items: list[Any]) -> bool:
    """Whether a list reads back the same from "a; b; c" (else the field shows it as JSON)."""
    return all(isinstance(v, str) and v == v.strip() and v and ";" not in v for v in items) and not (
        items and items[0].startswith("[")
    )


class _Field:
    """One payload property: its editor, how to read it, its error label."""

    def __init__(self, key: str, spec: dict[str, Any], required: bool) -> None:
        self.key = key
        self.spec = spec
        self.required = required
        self.touched = False  # the user changed it since the form was built
        self.error = QLabel()
        name(self.error, f"error_{key}", f"Problem with {key}")
        self.error.setProperty("role", "error")
        self.error.hide()
        types = spec.get("type", "string")
        types = [types] if isinstance(types, str) else list(types)
        self.kind = next((t for t in types if t != "null"), "string")
        self.command_line = spec.get("format") == "command-line"  # a program and its arguments
        self.widget: QWidget
        description = str(spec.get("description", ""))
        if "enum" in spec:
            box = QComboBox()
            if not required:
                box.addItem("(default)", _UNSET)
            for v in spec["enum"]:
                box.addItem(json.dumps(v) if not isinstance(v, str) else v, v)
            if "default" in spec:
                box.setCurrentIndex(max(0, box.findData(spec["default"])))
            self.widget = box
        elif self.kind == "boolean":
            self.widget = QCheckBox(str(spec.get("title") or description or key))
            self.widget.setChecked(bool(spec.get("default", False)))
        elif self.kind in ("number", "integer"):
            edit = QLineEdit()
            edit.setPlaceholderText(
                f"default {spec['default']}"
                if "default" in spec
                else ("required" if required else "optional")
            )
            self.widget = edit
        elif self.kind == "array" and self.command_line:
            edit = QLineEdit()
            edit.setPlaceholderText("as in a terminal, e.g. ffmpeg -i 'my video.mov' out.mp4")
            self.widget = edit
        elif self.kind == "array":
            edit = QLineEdit()
            edit.setPlaceholderText("one or more values, separated by ; (or a JSON list)")
            self.widget = edit
        elif self.kind == "object":
            edit = QLineEdit()
            edit.setPlaceholderText("JSON object, e.g. {}")
            self.widget = edit
        else:
            edit = QLineEdit()
            edit.setPlaceholderText("required" if required else "optional")
            if "default" in spec:
                edit.setPlaceholderText(f"default {spec['default']}")
            self.widget = edit
        name(self.widget, f"field_{key}", str(spec.get("title") or key.replace("_", " ")))
        if description:
            self.widget.setToolTip(description)
            self.widget.setAccessibleDescription(description)

    def value(self) -> Any:
        """The value to put in the payload, _UNSET to leave the key out, or raise
        ValueError with a message for the error label."""
        w = self.widget
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QCheckBox):
            return w.isChecked() if (w.isChecked() or self.required or "default" in self.spec) else _UNSET
        assert isinstance(w, QLineEdit)
        text = w.text().strip()
        if not text:
            return _UNSET
        if self.kind == "integer":
            try:
                return int(text)
            except ValueError:
                raise ValueError("must be a whole number") from None
        if self.kind == "number":
            try:
                return float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError:
                raise ValueError("must be a number") from None
        if self.kind == "array" and self.command_line:
            try:
                return shlex.split(text)
            except ValueError as e:
                raise ValueError(f"cannot split it into arguments: {e}") from None
        if self.kind == "array" and text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError as e:
                raise ValueError(f"must be a JSON list: {e}") from None
            if not isinstance(items, list):
                raise ValueError("must be a JSON list")
            return items
        if self.kind == "array":
            return [p.strip() for p in text.split(";") if p.strip()]
        if self.kind == "object":
            try:
                return json.loads(text)
            except ValueError as e:
                raise ValueError(f"must be JSON: {e}") from None
        return text

    def set_value(self, value: Any) -> None:
        w = self.widget
        if isinstance(w, QComboBox):
            i = w.findData(value)
            if i >= 0:
                w.setCurrentIndex(i)
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QLineEdit):
            if self.command_line and isinstance(value, list):
                w.setText(shlex.join(str(v) for v in value))
            elif self.kind == "array" and isinstance(value, list) and _joinable(value):
                w.setText("; ".join(value))
            elif self.kind == "object" or not isinstance(value, str):
                w.setText(json.dumps(value))
            else:
                w.setText(value)

    def connect(self, slot: Any) -> None:
        w = self.widget
        if isinstance(w, QComboBox):
            w.currentIndexChanged.connect(slot)
        elif isinstance(w, QCheckBox):
            w.toggled.connect(slot)
        elif isinstance(w, QLineEdit):
            w.textChanged.connect(slot)


class JobForm(QWidget):
    """The job a dialog makes: kind, a payload form generated from the kind's schema with
    inline validation, name, priority and group. The New job and schedule dialogs share it.

    Signals:
        validity_changed(bool): after every check, whether the job is valid.
    """

    validity_changed = Signal(bool)

    def __init__(
        self, kinds: list[KindInfo], initial: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("jobForm")
        self._kinds = {k.kind: k for k in kinds}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        top = QFormLayout()
        self.kind = QComboBox()
        name(self.kind, "jobKind", "Kind of job")
        for k in kinds:
            self.kind.addItem(k.kind, k.kind)
            if k.description:
                self.kind.setItemData(self.kind.count() - 1, k.description, Qt.ItemDataRole.ToolTipRole)
        top.addRow("&Kind:", self.kind)
        self.description = QLabel()
        name(self.description, "jobKindDescription", "What this kind does")
        self.description.setWordWrap(True)
        top.addRow("", self.description)
        self._top = top
        lay.addLayout(top)
        self.form_host = QWidget()
        self.form_host.setObjectName("jobPayloadForm")
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.form_host)
        common = QFormLayout()
        self.label = QLineEdit()
        name(self.label, "jobLabel", "Name shown in the queue")
        self.label.setPlaceholderText("optional: a name to show instead of the kind")
        common.addRow("&Name:", self.label)
        self.priority = QComboBox()
        name(self.priority, "jobPriority", "Priority")
        for title, p in PRIORITIES:
            self.priority.addItem(title, int(p))
        self.priority.setCurrentIndex(2)
        common.addRow("&Priority:", self.priority)
        self.group = QLineEdit()
        name(self.group, "jobGroup", "Group")
        self.group.setPlaceholderText("optional: jobs of a group share a limit and a pause switch")
        common.addRow("&Group:", self.group)
        self.common = common
        lay.addLayout(common)
        self.problem = QLabel()
        name(self.problem, "jobProblem", "Problem with the job")
        self.problem.setProperty("role", "error")
        self.problem.setWordWrap(True)
        self.problem.hide()
        lay.addWidget(self.problem)
        self._fields: list[_Field] = []
        self._job: NewJob | None = None
        self.kind.currentIndexChanged.connect(lambda _: self._build())
        if initial is not None and initial in self._kinds:
            self.kind.setCurrentIndex(self.kind.findData(initial))
        self._build()

    def _build(self) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self._fields = []
        info = self._kinds.get(self.kind.currentData() or "")
        self.description.setText(info.description or "" if info else "No kinds are registered.")
        schema = (info.schema if info else None) or {}
        props: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        for key, spec in props.items():
            f = _Field(key, spec if isinstance(spec, dict) else {}, key in required)
            title = str(f.spec.get("title") or key.replace("_", " ").capitalize())
            # a check box says what it is itself
            label = "" if f.kind == "boolean" else title + ("*" if f.required else "") + ":"
            holder = QWidget()
            v = QVBoxLayout(holder)
            v.setContentsMargins(0, 0, 0, 0)
            v.setSpacing(2)
            v.addWidget(f.widget)
            v.addWidget(f.error)
            self.form.addRow(label, holder)
            f.connect(lambda *_, f=f: setattr(f, "touched", True))
            f.connect(lambda *_: self.validate())
            self._fields.append(f)
        if info is not None and info.priority != Priority.NORMAL:
            i = self.priority.findData(info.priority)
            if i >= 0:
                self.priority.setCurrentIndex(i)
        self._align_labels()
        self.validate()

    def _align_labels(self) -> None:
        """The kind, its fields and the common rows are three forms: give their labels
        one width, so every field starts at the same x."""
        labels = [
            w
            for form in (self._top, self.form, self.common)
            for row in range(form.rowCount())
            if isinstance(item := form.itemAt(row, QFormLayout.ItemRole.LabelRole), QLayoutItem)
            and isinstance(w := item.widget(), QLabel)
        ]
        for w in labels:
            w.setMinimumWidth(0)
        width = max((w.sizeHint().width() for w in labels), default=0)
        for w in labels:
            w.setMinimumWidth(width)

    def set_job(
        self, kind: str, payload: Any, *, label: str | None, priority: int | None, group: str | None
    ) -> None:
        """Fill the form with an existing job (editing a schedule)."""
        i = self.kind.findData(kind)
        if i >= 0:
            self.kind.setCurrentIndex(i)
        values = payload if isinstance(payload, dict) else {}
        for f in self._fields:
            if f.key in values:
                f.set_value(values[f.key])
        self.label.setText(label or "")
        if priority is not None:
            j = self.priority.findData(int(priority))
            if j >= 0:
                self.priority.setCurrentIndex(j)
        self.group.setText(group or "")
        self.validate()

    def validate(self) -> bool:
        """Check the form against the kind's schema; problems show under their field."""
        info = self._kinds.get(self.kind.currentData() or "")
        if info is None:
            self._job = None
            self.validity_changed.emit(False)
            return False
        payload: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for f in self._fields:
            try:
                value = f.value()
            except ValueError as e:
                problems[f.key] = str(e)
                continue
            if value is not _UNSET:
                payload[f.key] = value
        general = ""
        if info.schema:
            validator = jsonschema.Draft202012Validator(info.schema)
            for err in validator.iter_errors(payload):
                path = list(err.absolute_path)
                if path and isinstance(path[0], str):
                    problems.setdefault(path[0], plain_error(err))
                elif err.validator == "required":
                    missing = str(err.message).split("'")[1] if "'" in str(err.message) else ""
                    if missing:
                        problems.setdefault(missing, "is required")
                    else:
                        general = plain_error(err)
                else:
                    general = plain_error(err)
        for f in self._fields:
            text = problems.get(f.key, "")
            f.error.setText(text)
            f.error.setVisible(bool(text))
            # a required field nobody has typed in yet shows what it needs as a hint
            empty = isinstance(f.widget, QLineEdit) and not f.widget.text().strip()
            mark_problem(f.error, f.widget, wrong=bool(text) and (f.touched or not empty))
        self.problem.setText(general)
        self.problem.setVisible(bool(general))
        valid = not problems and not general
        self._job = (
            NewJob(
                kind=info.kind,
                payload=payload,
                label=self.label.text().strip() or None,
                priority=int(self.priority.currentData()),
                group=self.group.text().strip() or None,
            )
            if valid
            else None
        )
        self.validity_changed.emit(valid)
        return valid

    def field(self, key: str) -> QWidget | None:
        for f in self._fields:
            if f.key == key:
                return f.widget
        return None

    def error_text(self, key: str) -> str:
        for f in self._fields:
            if f.key == key:
                return f.error.text() if not f.error.isHidden() else ""
        return ""

    def job(self) -> NewJob | None:
        if not self.validate():
            return None
        return self._job

    def last_checked(self) -> NewJob | None:
        """The job as the last check found it (None if invalid), without checking again."""
        return self._job


class JobDialogBase(QDialog):
    """What the New job dialogs share: Add to queue (the default), Schedule… and Cancel.
    Schedule… accepts the dialog with `scheduling` set: its job becomes a new schedule's."""

    scheduling = False

    def validate(self) -> bool:
        raise NotImplementedError

    def make_buttons(self) -> QDialogButtonBox:
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.setObjectName("jobButtons")
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Add to queue")
        name(self.ok, "jobAdd", "Add to queue")
        self.schedule_button = buttons.addButton("&Schedule…", QDialogButtonBox.ButtonRole.ActionRole)
        name(self.schedule_button, "jobSchedule", "Run this job on a schedule")
        self.schedule_button.setToolTip("Run this job on a schedule instead: choose when it repeats next")
        self.schedule_button.setAutoDefault(False)
        name(buttons.button(QDialogButtonBox.StandardButton.Cancel), "jobCancel", "Cancel")
        self.schedule_button.clicked.connect(self.schedule)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        return buttons

    def set_valid(self, valid: bool) -> None:
        self.ok.setEnabled(valid)
        self.schedule_button.setEnabled(valid)

    def schedule(self) -> None:
        self.scheduling = True
        self.accept()

    def accept(self) -> None:
        if self.validate():
            super().accept()
        else:
            self.scheduling = False


class NewJobDialog(JobDialogBase):
    def __init__(
        self, kinds: list[KindInfo], initial: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        name(self, "newJobDialog", "New job")
        self.setWindowTitle("New job")
        self.setMinimumWidth(560)  # as the dedicated job dialogs
        lay = QVBoxLayout(self)
        self.buttons = self.make_buttons()
        self.job_form = JobForm(kinds, initial, self)
        self.job_form.validity_changed.connect(self.set_valid)
        self.set_valid(self.job_form.last_checked() is not None)
        lay.addWidget(self.job_form)
        lay.addWidget(self.buttons)
        self.kind, self.label = self.job_form.kind, self.job_form.label
        self.priority, self.group = self.job_form.priority, self.job_form.group

    def validate(self) -> bool:
        return self.job_form.validate()

    def field(self, key: str) -> QWidget | None:
        return self.job_form.field(key)

    def error_text(self, key: str) -> str:
        return self.job_form.error_text(key)

    def job(self) -> NewJob | None:
        return self.job_form.job()


def mark_problem(message: QLabel, field: QWidget, *, wrong: bool) -> None:
    """Style a field's message as an error (and the field red) when its value is wrong,
    else as a hint: what a field nobody has typed in yet still needs is not an error."""
    set_style_property(message, "role", "error" if wrong else "hint")
    set_style_property(field, "invalid", wrong)


# The schemas' named "not" rules (core.jobs.net.common) and what to tell the user.
_NOT_TEXT = {
    net_common.BAD_URL_DEF: "must be an http:// or https:// address, without user:password@",
    net_common.SECRET_HEADER_DEF: "Authorization and Cookie are secrets: name a keyring entry in Credentials",
    net_common.BAD_HEADER_VALUE_DEF: "a header value holds printable ASCII only, on one line",
    net_common.ABSOLUTE_PATH_DEF: "must be a full path (starting with /)",
}


def plain_error(err: jsonschema.ValidationError) -> str:
    """A schema error in the words a form shows under its field."""
    v = err.validator
    if v == "minimum":
        return f"must be at least {err.validator_value}"
    if v == "maximum":
        return f"must be at most {err.validator_value}"
    if v == "exclusiveMinimum":
        return f"must be more than {err.validator_value}"
    if v == "exclusiveMaximum":
        return f"must be less than {err.validator_value}"
    if v == "type":
        return f"must be of type {err.validator_value}"
    if v == "enum":
        return "must be one of " + ", ".join(json.dumps(x) for x in err.validator_value)
    if v == "minItems":
        return "add at least one"
    if v == "minLength":
        return "is required"
    if v == "pattern":
        # the field's description says what the form is, where it has one
        described = err.schema.get("description") if isinstance(err.schema, dict) else None
        return f"is not in the expected form: {described}" if described else "is not in the expected form"
    if v == "required":
        return "is required"
    if v == "not":
        return _NOT_TEXT.get(
            str(err.validator_value.get("$ref", "")).rsplit("/", 1)[-1], "is not allowed here"
        )
    return str(err.message)
