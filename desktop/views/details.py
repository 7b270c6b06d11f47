"""The details panel: everything about one task — summary, payload (secrets masked),
log (auto-scrolling only while at the bottom), events, parts and attempts. It stays on a
task after it finishes (ux Q-19)."""

from __future__ import annotations

import json
import time
from datetime import datetime

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core import EventKind, TaskRecord, TaskState
from desktop.bridge import Bridge, TaskBatch
from desktop.views.widgets import name
from desktop.vocabulary import (
    format_bytes,
    format_duration,
    format_priority,
    mask_secrets,
    payload_summary,
    state_label,
)

REFRESH_S = 0.5  # the panel follows a running task at most twice a second

SUMMARY_FIELDS = (
    ("name", "Name"),
    ("id", "ID"),
    ("kind", "Kind"),
    ("state", "State"),
    ("progress", "Progress"),
    ("priority", "Priority"),
    ("group", "Group"),
    ("added", "Added"),
    ("started", "Started"),
    ("finished", "Finished"),
    ("elapsed", "Elapsed"),
    ("attempts", "Attempts"),
    ("parent", "Part of"),
    ("depends", "Depends on"),
    ("error", "Error"),
    ("result", "Result"),
)


def _when(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S") if dt else "—"


class DetailsPanel(QWidget):
    def __init__(self, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "detailsPanel", "Job details")
        self.bridge = bridge
        self.task_id: int | None = None
        self._log_cursor: int | None = None
        self._last = 0.0
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("No job selected")
        name(self.title, "detailsTitle", "Selected job")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.tabs = QTabWidget()
        name(self.tabs, "detailsTabs", "Details sections")
        lay.addWidget(self.tabs, 1)
        # summary
        summary = QWidget()
        columns = QHBoxLayout(summary)
        forms = (QFormLayout(), QFormLayout())
        for f in forms:
            f.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
            columns.addLayout(f, 1)
        self.fields: dict[str, QLabel] = {}
        half = (len(SUMMARY_FIELDS) + 1) // 2
        for n, (key, label) in enumerate(SUMMARY_FIELDS):
            form = forms[0] if n < half else forms[1]
            value = QLabel("—")
            name(value, f"detail_{key}", label)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{label}:", value)
            self.fields[key] = value
        scroll = QScrollArea()
        scroll.setObjectName("detailsSummaryScroll")
        scroll.setWidgetResizable(True)
        scroll.setWidget(summary)
        self.tabs.addTab(scroll, "Summary")
        # payload
        self.payload = QPlainTextEdit()
        name(self.payload, "detailsPayload", "Payload (secrets hidden)")
        self.payload.setReadOnly(True)
        self.tabs.addTab(self.payload, "Payload")
        # log
        log_page = QWidget()
        log_lay = QVBoxLayout(log_page)
        log_lay.setContentsMargins(0, 0, 0, 0)
        self.log = QPlainTextEdit()
        name(self.log, "detailsLog", "Log")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(20_000)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        log_lay.addWidget(self.log, 1)
        row = QHBoxLayout()
        self.copy_log = QPushButton("Copy log")
        name(self.copy_log, "copyLog", "Copy log")
        self.copy_log.clicked.connect(self.copy_log_text)
        row.addStretch(1)
        row.addWidget(self.copy_log)
        log_lay.addLayout(row)
        self.tabs.addTab(log_page, "Log")
        # events, parts, attempts
        self.events = QPlainTextEdit()
        name(self.events, "detailsEvents", "Events")
        self.events.setReadOnly(True)
        self.tabs.addTab(self.events, "Events")
        self.parts = QPlainTextEdit()
        name(self.parts, "detailsChildren", "Parts")
        self.parts.setReadOnly(True)
        self.tabs.addTab(self.parts, "Parts")
        self.attempts = QPlainTextEdit()
        name(self.attempts, "detailsAttempts", "Attempts")
        self.attempts.setReadOnly(True)
        self.tabs.addTab(self.attempts, "Attempts")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        bridge.batch_ready.connect(self._on_batch)
        self.show_task(None)

    def stop(self) -> None:
        self._timer.stop()
        self.bridge.batch_ready.disconnect(self._on_batch)

    def show_task(self, task_id: int | None) -> None:
        if task_id == self.task_id and task_id is not None:
            return
        self.task_id = task_id
        self._log_cursor = None
        self.log.clear()
        self.refresh()

    def _on_batch(self, batch: TaskBatch) -> None:
        tid = self.task_id
        if tid is None or not (tid in batch.upserts or tid in batch.progress):
            return
        wait = REFRESH_S - (time.monotonic() - self._last)
        if tid in batch.upserts or wait <= 0:
            self.refresh()
        elif not self._timer.isActive():
            self._timer.start(int(wait * 1000))

    def refresh(self) -> None:
        if self.bridge.closed:
            return
        self._last = time.monotonic()
        tid = self.task_id
        rec = self.bridge.get(tid) if tid is not None else None
        if rec is None:
            self.title.setText("No job selected" if tid is None else f"Job #{tid} is no longer in history")
            for v in self.fields.values():
                v.setText("—")
            for w in (self.payload, self.events, self.parts, self.attempts):
                w.setPlainText("")
            self.setEnabled(tid is not None)
            return
        self.setEnabled(True)
        self.title.setText(f"{rec.name}  ·  #{rec.id}")
        self._summary(rec)
        lines = [f"{k}: {v}" for k, v in payload_summary(rec.payload)]
        pretty = json.dumps(mask_secrets(rec.payload), indent=2, ensure_ascii=False)
        self.payload.setPlainText("\n".join(lines) + ("\n\n" + pretty if rec.payload is not None else ""))
        self._append_logs(rec.id)
        self._events_and_attempts(rec)
        kids = self.bridge.task_children(rec.id)
        now = datetime.now().astimezone()
        self.parts.setPlainText(
            "\n".join(f"#{k.id}  {k.name}  —  {state_label(k, now)}" for k in kids) if kids else "No parts."
        )

    def _summary(self, rec: TaskRecord) -> None:
        now = datetime.now().astimezone()
        f = self.fields
        f["name"].setText(rec.name)
        f["id"].setText(str(rec.id))
        f["kind"].setText(rec.kind)
        f["state"].setText(state_label(rec, now))
        if rec.progress is not None:
            text = f"{rec.progress * 100:.0f} %"
            if rec.bytes_total and rec.bytes_total >= 100_000:
                text += f" — {format_bytes(rec.bytes_done)} of {format_bytes(rec.bytes_total)}"
            if rec.progress_message:
                text += f" — {rec.progress_message}"
            f["progress"].setText(text)
        else:
            f["progress"].setText("—")
        base = self._base_priority(rec)
        f["priority"].setText(
            f"{format_priority(rec.priority)} ({rec.priority}); base {format_priority(base)} ({base})"
        )
        f["group"].setText(rec.group or "—")
        f["added"].setText(_when(rec.created_at))
        f["started"].setText(_when(rec.started_at))
        f["finished"].setText(_when(rec.finished_at))
        if rec.duration is not None:
            f["elapsed"].setText(format_duration(rec.duration))
        elif rec.started_at is not None and rec.state == TaskState.RUNNING:
            f["elapsed"].setText(format_duration((now - rec.started_at).total_seconds()))
        else:
            f["elapsed"].setText("—")
        total = (rec.max_retries + 1) if rec.max_retries is not None else None
        f["attempts"].setText(f"{rec.attempt} of {total}" if total else str(rec.attempt))
        f["parent"].setText(f"#{rec.parent_id}" if rec.parent_id else "—")
        deps = self.bridge.dependencies(rec.id)
        f["depends"].setText(", ".join(f"#{d}" for d in deps) if deps else "—")
        f["error"].setText(rec.error or "—")
        f["result"].setText(
            json.dumps(mask_secrets(rec.result), ensure_ascii=False)[:500] if rec.result is not None else "—"
        )

    def _base_priority(self, rec: TaskRecord) -> int:
        for ev in self.bridge.events_of(rec.id):
            if ev.kind in (EventKind.PRIORITY_CHANGED, EventKind.MOVED):
                old = ev.data.get("old", ev.data.get("old_priority"))
                if old is not None:
                    return int(old)
        return rec.priority

    def _append_logs(self, task_id: int) -> None:
        lines = self.bridge.logs(task_id, self._log_cursor)
        if not lines:
            if self._log_cursor is None:
                self.log.setPlainText("No log lines yet.")
                self._log_cursor = 0
            return
        if self._log_cursor in (None, 0):
            self.log.clear()
        bar = self.log.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        keep = bar.value()
        self.log.appendPlainText(
            "\n".join(f"{ln.at.astimezone():%H:%M:%S}  {ln.level.upper():7} {ln.message}" for ln in lines)
        )
        self._log_cursor = lines[-1].id
        if at_bottom:
            bar.setValue(bar.maximum())
        else:
            bar.setValue(keep)  # the user scrolled up to read: stay there

    def _events_and_attempts(self, rec: TaskRecord) -> None:
        events = self.bridge.events_of(rec.id)
        out = []
        attempts = []
        for ev in events:
            extra = ""
            if ev.data:
                shown = {k: v for k, v in ev.data.items() if v is not None}
                extra = "  " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:4]) if shown else ""
            out.append(f"{ev.at.astimezone():%H:%M:%S}  {ev.kind.value}{extra}")
            if ev.kind in (EventKind.STARTED, EventKind.RETRYING, EventKind.FAILED, EventKind.COMPLETED):
                attempts.append(f"{ev.at.astimezone():%H:%M:%S}  {ev.kind.value}{extra}")
        self.events.setPlainText("\n".join(out) or "No events.")
        self.attempts.setPlainText(
            f"Attempt {rec.attempt}" + (f" of {rec.max_retries + 1}" if rec.max_retries is not None else "")
            + ("\n\n" + "\n".join(attempts) if attempts else "")
        )  # fmt: skip

    def copy_log_text(self) -> None:
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(self.log.toPlainText())
