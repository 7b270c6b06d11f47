"""New/Edit schedule: a Simple mode (every N minutes or hours, daily, weekdays or weekly
at a time) and an Advanced mode (a cron expression) that round-trip; inline validation
of the cron fields that disables Save; the trigger in words and its next 5 fire times in
the chosen time zone; the job it runs (the New job form) and its catch-up policy.

Simple mode writes cron wherever cron says the same thing (`*/15 * * * *`, `0 9 * * 1-5`),
so switching modes never changes what a schedule does. An Advanced expression that Simple
cannot show stays "Custom (edit in Advanced)" and Save keeps it: Simple's controls only
replace it when the user picks another repetition there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import available_timezones

from PySide6.QtCore import QTime, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTabWidget,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from core import InvalidSchedule, KindInfo, Schedule
from core.jobs import PART_KINDS
from core.schedules import describe, preview
from desktop.dialogs.common import ask
from desktop.dialogs.job_form import JobDialog, own
from desktop.dialogs.jobs import DEDICATED, DIALOG_TITLES, for_schedule
from desktop.dialogs.new_job import JobForm, NewJob
from desktop.dialogs.simple_trigger import (
    CUSTOM,
    DAILY,
    DAYS,
    HOURS,
    MINUTES,
    WEEKDAYS,
    WEEKLY,
    SimpleTrigger,
    cron_problem,
    simple_from_cron,
    simple_from_every,
)
from desktop.views.widgets import name, set_style_property

SIMPLE, ADVANCED = 0, 1
# Simple repetitions (the combo's data)
REPEATS = (
    (MINUTES, "Every N minutes"),
    (HOURS, "Every N hours"),
    (DAILY, "Every day at"),
    (WEEKDAYS, "Every weekday at"),
    (WEEKLY, "Weekly on"),
)
CUSTOM_TEXT = "Custom (edit in Advanced)"
MISFIRES = (
    ("run_once", "Catch up once (one run for all missed ones)"),
    ("skip", "Skip missed runs"),
    ("run_all", "Run every missed run (at most 10)"),
)
OVERLAPS = (
    ("skip", "Skip a run while the previous one is still active"),
    ("queue", "Queue one run after the active one"),
    ("replace", "Cancel the active run and start the new one"),
    ("allow", "Allow runs to overlap"),
)
LOCAL = "Local time"


@dataclass(frozen=True, slots=True)
class ScheduleDraft:
    """What the dialog saves: schedule fields and the job's submit options."""

    name: str | None
    kind: str
    payload: Any
    cron: str | None
    every: float | None
    tz: str | None
    misfire: str
    overlap: str
    label: str | None
    priority: int
    group: str | None

    def options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cron": self.cron,
            "every": self.every,
            "tz": self.tz,
            "misfire": self.misfire,
            "overlap": self.overlap,
            "label": self.label,
            "priority": self.priority,
            "group": self.group,
        }


class ScheduleDialog(QDialog):
    """Signals:
    validity_changed(bool): whether Save is enabled.
    """

    validity_changed = Signal(bool)

    def __init__(
        self,
        kinds: list[KindInfo],
        now: Callable[[], datetime],
        schedule: Schedule | None = None,
        parent: QWidget | None = None,
        *,
        job: NewJob | None = None,
        make_editor: Callable[[str, QWidget], Awaitable[JobDialog]] | None = None,
    ) -> None:
        """`job` fills a new schedule's Job part (and its name) with a job made elsewhere.
        `make_editor(kind, parent)` builds a built-in kind's own New-job dialog: the Job part
        then offers to edit its job there (pickers, saved targets, presets)."""
        super().__init__(parent)
        editing = schedule is not None
        name(self, "scheduleDialog", "Edit schedule" if editing else "New schedule")
        self.setWindowTitle("Edit schedule" if editing else "New schedule")
        self.setMinimumWidth(560)
        self._now = now
        self._make_editor = make_editor
        self.job_editor: JobDialog | None = None  # the kind's own dialog, while it is open
        self._custom_cron: str | None = None  # an Advanced expression Simple cannot show
        self._custom_every: float | None = None
        self._syncing = False
        self._problem = ""
        outer = QVBoxLayout(self)
        scroll = QScrollArea()
        scroll.setObjectName("scheduleScroll")
        scroll.setWidgetResizable(True)
        body = QWidget()
        body.setObjectName("scheduleBody")
        lay = QVBoxLayout(body)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        top = QFormLayout()
        self.name_edit = QLineEdit()
        name(self.name_edit, "scheduleName", "Schedule name")
        self.name_edit.setPlaceholderText("e.g. Upload camera folder")
        top.addRow("&Name:", self.name_edit)
        lay.addLayout(top)
        # -- when ---------------------------------------------------------------------------
        when = QGroupBox("When")
        when.setObjectName("scheduleWhen")
        wlay = QVBoxLayout(when)
        self.tabs = QTabWidget()
        name(self.tabs, "scheduleMode", "Simple or Advanced (cron) mode")
        simple = QWidget()
        simple.setObjectName("scheduleSimple")
        sform = QFormLayout(simple)
        self.repeat = QComboBox()
        name(self.repeat, "scheduleRepeat", "Repeat")
        for key, title in REPEATS:
            self.repeat.addItem(title, key)
        sform.addRow("&Repeat:", self.repeat)
        self.every_n = QSpinBox()
        name(self.every_n, "scheduleEveryN", "Every how many")
        self.every_n.setRange(1, 1000)
        self.every_n.setValue(15)
        sform.addRow("&Every:", self.every_n)
        self.time_edit = QTimeEdit(QTime(9, 0))
        name(self.time_edit, "scheduleTime", "At what time")
        self.time_edit.setDisplayFormat("HH:mm")
        sform.addRow("&At:", self.time_edit)
        days_row = QWidget()
        days_row.setObjectName("scheduleDays")
        dlay = QHBoxLayout(days_row)
        dlay.setContentsMargins(0, 0, 0, 0)
        self.day_boxes: list[QCheckBox] = []
        for i, d in enumerate(DAYS):
            box = QCheckBox(d)
            name(box, f"scheduleDay{i}", f"On {d}")
            box.setChecked(i == 0)
            dlay.addWidget(box)
            self.day_boxes.append(box)
        dlay.addStretch(1)
        sform.addRow("On:", days_row)
        self._simple_form = sform
        self._days_row = days_row
        self.custom_label = QLabel(CUSTOM_TEXT)
        name(self.custom_label, "scheduleCustom", "This schedule is custom: edit it in Advanced mode")
        self.custom_label.setProperty("role", "hint")
        sform.addRow("", self.custom_label)
        self.tabs.addTab(simple, "&Simple")
        advanced = QWidget()
        advanced.setObjectName("scheduleAdvanced")
        aform = QFormLayout(advanced)
        cron_box = QWidget()
        cron_lay = QVBoxLayout(cron_box)
        cron_lay.setContentsMargins(0, 0, 0, 0)
        cron_lay.setSpacing(2)
        self.cron_edit = QLineEdit("0 9 * * *")
        name(self.cron_edit, "scheduleCron", "Cron expression")
        self.cron_edit.setPlaceholderText("minute hour day-of-month month day-of-week")
        legend = QLabel("minute · hour · day of month · month · day of week (0 or 7 = Sunday)")
        legend.setObjectName("scheduleCronLegend")
        legend.setProperty("role", "hint")
        self.cron_error = QLabel()
        name(self.cron_error, "scheduleCronError", "Problem with the cron expression")
        self.cron_error.setProperty("role", "error")
        self.cron_error.setWordWrap(True)
        self.cron_error.hide()
        self.cron_note = QLabel()
        name(self.cron_note, "scheduleCronNote", "About the Simple schedule")
        self.cron_note.setProperty("role", "hint")
        self.cron_note.setWordWrap(True)
        self.cron_note.hide()
        cron_lay.addWidget(self.cron_edit)
        cron_lay.addWidget(legend)
        cron_lay.addWidget(self.cron_error)
        cron_lay.addWidget(self.cron_note)
        aform.addRow("&Cron:", cron_box)
        self.tabs.addTab(advanced, "&Advanced (cron)")
        wlay.addWidget(self.tabs)
        zform = QFormLayout()
        self.zone = QComboBox()
        name(self.zone, "scheduleZone", "Time zone")
        self.zone.addItem(LOCAL, None)
        for z in sorted(available_timezones()):
            self.zone.addItem(z, z)
        zform.addRow("&Time zone:", self.zone)
        self.description = QLabel()
        name(self.description, "scheduleDescription", "The schedule in words")
        self.description.setWordWrap(True)
        self.description.setProperty("role", "emphasis")
        zform.addRow("Runs:", self.description)
        self.next_runs = QLabel()
        name(self.next_runs, "scheduleNextRuns", "The next 5 runs")
        zform.addRow("Next 5 runs:", self.next_runs)
        wlay.addLayout(zform)
        lay.addWidget(when)
        # -- job ------------------------------------------------------------------------------
        job_box = QGroupBox("Job")
        job_box.setObjectName("scheduleJob")
        jlay = QVBoxLayout(job_box)
        # part kinds are not offered; a schedule that already runs one still shows it
        current = schedule.kind if schedule else None
        shown = [k for k in kinds if k.kind not in PART_KINDS or k.kind == current]
        self.job_form = JobForm(shown, schedule.kind if schedule else None)
        # its runs take the schedule's name (an older custom label is kept as it is)
        self.job_form.common.setRowVisible(self.job_form.label, False)
        jlay.addWidget(self.job_form)
        erow = QHBoxLayout()
        self.edit_job_button = QPushButton()
        self.edit_job_button.setObjectName("scheduleEditJob")
        self.edit_job_button.setAutoDefault(False)
        self.edit_job_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.edit_job_button.clicked.connect(lambda: own(self, self._edit_in_own_dialog()))
        erow.addWidget(self.edit_job_button)
        self.edit_job_note = QLabel()
        name(self.edit_job_note, "scheduleEditJobNote", "Why the job's own dialog cannot edit it")
        self.edit_job_note.setProperty("role", "hint")
        self.edit_job_note.setWordWrap(True)
        self.edit_job_note.hide()
        erow.addWidget(self.edit_job_note, 1)
        erow.addStretch(0)
        jlay.addLayout(erow)
        self.job_form.kind.currentIndexChanged.connect(lambda _: self._show_edit_job())
        self._show_edit_job()
        lay.addWidget(job_box)
        policy = QGroupBox("When runs are missed or overlap")
        policy.setObjectName("schedulePolicy")
        pform = QFormLayout(policy)
        self.misfire = QComboBox()
        name(self.misfire, "scheduleMisfire", "Catch-up policy for missed runs")
        for key, title in MISFIRES:
            self.misfire.addItem(title, key)
        pform.addRow("&Missed runs:", self.misfire)
        self.overlap = QComboBox()
        name(self.overlap, "scheduleOverlap", "What to do when a run is still active")
        for key, title in OVERLAPS:
            self.overlap.addItem(title, key)
        pform.addRow("&Still running:", self.overlap)
        lay.addWidget(policy)
        lay.addStretch(1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.setObjectName("scheduleButtons")
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        name(self.save_button, "scheduleSave", "Save schedule")
        name(self.buttons.button(QDialogButtonBox.StandardButton.Cancel), "scheduleCancel", "Cancel")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        outer.addWidget(self.buttons)
        if schedule is not None:
            self._load(schedule)
        else:
            self.repeat.setCurrentIndex(self.repeat.findData(DAILY))
            if job is not None:
                self._use_job(job)
        # wiring (after loading: loading is not the user choosing)
        self.repeat.currentIndexChanged.connect(lambda _: self._simple_changed(user=True))
        # only choosing a repetition replaces a custom expression; the other controls are
        # hidden while it is custom, and changing them never touches it
        self.every_n.valueChanged.connect(lambda _: self._simple_changed(user=False))
        self.time_edit.timeChanged.connect(lambda _: self._simple_changed(user=False))
        for box in self.day_boxes:
            box.toggled.connect(lambda _: self._simple_changed(user=False))
        self.cron_edit.textChanged.connect(lambda _: self.refresh())
        self.tabs.currentChanged.connect(self._mode_changed)
        self.zone.currentIndexChanged.connect(lambda _: self.refresh())
        self.job_form.validity_changed.connect(lambda _: self._update_save())
        self._show_simple_controls()
        self.refresh()
        self.resize(640, 760)

    # -- the job in its own dialog -----------------------------------------------------------

    def _show_edit_job(self) -> None:
        kind = str(self.job_form.kind.currentData() or "")
        shown = self._make_editor is not None and kind in DEDICATED
        self.edit_job_button.setVisible(shown)
        self.edit_job_note.hide()
        if shown:
            title = DIALOG_TITLES.get(kind, kind)
            self.edit_job_button.setText(f"Edit in the {title} dialog…")
            self.edit_job_button.setAccessibleName(f"Edit the job in the {title} dialog")

    async def _edit_in_own_dialog(self) -> None:
        assert self._make_editor is not None
        kind = str(self.job_form.kind.currentData() or "")
        dialog = for_schedule(await self._make_editor(kind, self))
        current = self.job_form.last_checked()
        if current is not None and not dialog.load_job(current):
            dialog.deleteLater()
            title = DIALOG_TITLES.get(kind, kind)
            self.edit_job_note.setText(
                f"This job has settings the {title} dialog does not show: edit them here."
            )
            self.edit_job_note.show()
            return
        self.job_editor = dialog
        try:
            accepted = await ask(dialog) == JobDialog.DialogCode.Accepted
            job = dialog.job() if accepted else None
        finally:
            dialog.deleteLater()
            self.job_editor = None
        if job is not None:
            self._use_job(job)

    def _use_job(self, job: NewJob) -> None:
        """Run `job`; its name names the schedule unless the schedule has one already."""
        self.job_form.set_job(job.kind, job.payload, label=None, priority=job.priority, group=job.group)
        if not self.name_edit.text().strip() and job.label:
            self.name_edit.setText(job.label)

    # -- loading --------------------------------------------------------------------------

    def _load(self, s: Schedule) -> None:
        self.name_edit.setText(s.name or "")
        simple: SimpleTrigger | None = None
        if s.cron is not None:
            self.cron_edit.setText(s.cron)
            simple = simple_from_cron(s.cron)
            if simple is None:
                self._custom_cron = s.cron
        elif s.every is not None:
            simple = simple_from_every(s.every)
            if simple is None:
                self._custom_every = s.every
        if simple is not None:
            self._set_simple(simple)
        if self._custom_cron is not None:
            self.tabs.setCurrentIndex(ADVANCED)
        elif self._custom_every is not None:
            self._set_custom()
        i = self.zone.findData(s.tz)
        self.zone.setCurrentIndex(max(0, i))
        self.misfire.setCurrentIndex(max(0, self.misfire.findData(s.misfire)))
        self.overlap.setCurrentIndex(max(0, self.overlap.findData(s.overlap)))
        opts = s.options
        self.job_form.set_job(
            s.kind, s.payload, label=opts.get("label"), priority=opts.get("priority"), group=opts.get("group")
        )

    def _set_simple(self, t: SimpleTrigger) -> None:
        self._syncing = True
        try:
            ci = self.repeat.findData(CUSTOM)
            if ci >= 0:
                self.repeat.removeItem(ci)
            self.repeat.setCurrentIndex(self.repeat.findData(t.repeat))
            if t.repeat in (MINUTES, HOURS):
                self.every_n.setValue(t.n)
            self.time_edit.setTime(QTime(t.at.hour, t.at.minute))
            if t.repeat == WEEKLY:
                for i, box in enumerate(self.day_boxes):
                    box.setChecked(i in t.days)
        finally:
            self._syncing = False
        self._show_simple_controls()

    def _set_custom(self) -> None:
        self._syncing = True
        try:
            if self.repeat.findData(CUSTOM) < 0:
                self.repeat.addItem(CUSTOM_TEXT, CUSTOM)
            self.repeat.setCurrentIndex(self.repeat.findData(CUSTOM))
        finally:
            self._syncing = False
        self._show_simple_controls()

    # -- modes ----------------------------------------------------------------------------

    def simple_trigger(self) -> SimpleTrigger | None:
        repeat = self.repeat.currentData()
        if repeat == CUSTOM:
            return None
        t = self.time_edit.time()
        days = frozenset(i for i, b in enumerate(self.day_boxes) if b.isChecked())
        return SimpleTrigger(str(repeat), self.every_n.value(), time(t.hour(), t.minute()), days)

    def is_custom(self) -> bool:
        return bool(self.repeat.currentData() == CUSTOM)

    def _show_simple_controls(self) -> None:
        repeat = self.repeat.currentData()
        form = self._simple_form
        form.setRowVisible(self.every_n, repeat in (MINUTES, HOURS))
        self.every_n.setSuffix(" minutes" if repeat == MINUTES else " hours")
        form.setRowVisible(self.time_edit, repeat in (DAILY, WEEKDAYS, WEEKLY))
        form.setRowVisible(self._days_row, repeat == WEEKLY)
        form.setRowVisible(self.custom_label, repeat == CUSTOM)
        if repeat == CUSTOM:
            what = self._custom_cron or (f"every {self._custom_every:g} s" if self._custom_every else "")
            self.custom_label.setText(f"{CUSTOM_TEXT}: {what}" if what else CUSTOM_TEXT)

    def _simple_changed(self, *, user: bool) -> None:
        if self._syncing:
            return
        if user and not self.is_custom():
            # the user chose a Simple repetition: it replaces a custom expression
            self._custom_cron = self._custom_every = None
            ci = self.repeat.findData(CUSTOM)
            if ci >= 0:
                self._syncing = True
                self.repeat.removeItem(ci)
                self._syncing = False
        self._show_simple_controls()
        self.refresh()

    def _mode_changed(self, mode: int) -> None:
        if mode == ADVANCED:
            t = self.simple_trigger()
            cron = t.cron() if t is not None else self._custom_cron
            every = t.every() if t is not None else self._custom_every
            note = ""
            if cron is None and every is not None:
                # an interval cron cannot say (every 7 minutes): say so rather than show a
                # stale expression; Simple mode still saves the interval
                n, unit = (every / 3600, "hours") if every % 3600 == 0 else (every / 60, "minutes")
                note = f"Every {n:g} {unit} has no cron expression: Simple mode keeps it."
                cron = ""
            if cron is not None and cron != self.cron_edit.text():
                self.cron_edit.setText(cron)
            self.cron_note.setText(note)
            self.cron_note.setVisible(bool(note))
        else:
            expr = self.cron_edit.text().strip()
            if not cron_problem(expr):
                simple = simple_from_cron(expr)
                if simple is None:
                    self._custom_cron, self._custom_every = expr, None
                    self._set_custom()
                else:
                    self._custom_cron = None
                    self._set_simple(simple)
        self.refresh()

    def mode(self) -> int:
        return self.tabs.currentIndex()

    # -- the trigger ------------------------------------------------------------------------

    def trigger(self) -> tuple[str | None, float | None, str]:
        """(cron, every, problem) as Save would store them."""
        if self.mode() == ADVANCED:
            expr = " ".join(self.cron_edit.text().split())
            problem = cron_problem(expr)
            return (None if problem else expr), None, problem
        if self.is_custom():
            return self._custom_cron, self._custom_every, ""
        t = self.simple_trigger()
        assert t is not None
        if t.repeat == WEEKLY and not t.days:
            return None, None, "choose at least one day"
        return t.cron(), t.every(), ""

    def tz(self) -> str | None:
        data = self.zone.currentData()
        return str(data) if data else None

    def refresh(self) -> None:
        cron, every, problem = self.trigger()
        if self.mode() == ADVANCED:
            self.cron_error.setText(problem)
            self.cron_error.setVisible(bool(problem))
            set_style_property(self.cron_edit, "invalid", bool(problem))
        if problem:
            self.description.setText("")
            self.next_runs.setText("")
        elif cron is not None:
            self.description.setText(describe(cron))
            try:
                fires = preview(cron, tz=self.tz(), count=5, after=self._now())
            except InvalidSchedule as e:
                fires, problem = [], str(e)
            self.next_runs.setText("\n".join(self._when(f) for f in fires))
        elif every is not None:
            t = self.simple_trigger()
            unit = "minutes" if t is not None and t.repeat == MINUTES else "hours"
            n = every / (60 if unit == "minutes" else 3600)
            self.description.setText(f"Every {n:g} {unit}, counted from when the schedule is saved")
            start = self._now()
            self.next_runs.setText(
                "\n".join(self._when(start + timedelta(seconds=every * k)) for k in range(1, 6))
            )
        self._problem = problem
        self._update_save()

    def _when(self, when: datetime) -> str:
        zone = self.tz()
        local = when if zone else when.astimezone()
        return f"{local:%a %Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()

    def _update_save(self) -> None:
        ok = not self._problem and self.job_form.last_checked() is not None
        if self.save_button.isEnabled() != ok:
            self.save_button.setEnabled(ok)
            self.validity_changed.emit(ok)

    def next_run_texts(self) -> list[str]:
        text = self.next_runs.text()
        return text.split("\n") if text else []

    def draft(self) -> ScheduleDraft | None:
        cron, every, problem = self.trigger()
        job = self.job_form.job()
        if problem or job is None or (cron is None and every is None):
            return None
        return ScheduleDraft(
            name=self.name_edit.text().strip() or None,
            kind=job.kind,
            payload=job.payload,
            cron=cron,
            every=every,
            tz=self.tz(),
            misfire=str(self.misfire.currentData()),
            overlap=str(self.overlap.currentData()),
            label=job.label,
            priority=job.priority,
            group=job.group,
        )

    def accept(self) -> None:
        if self.draft() is not None:
            super().accept()
