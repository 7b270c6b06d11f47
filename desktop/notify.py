"""Desktop notifications: one summary per finished batch and one per failure (ux A-07),
sent to the freedesktop notification service on the session bus, or shown in the
window (its toast, or the tray while the window hides there) without such a service.

A batch is what finished between two moments when the whole queue was done (nothing
pending, blocked, running, waiting or paused, children included); the summary goes out
at the second one. Only top-level jobs count: a multipart upload is one job.

Why not QtDBus: Notify's signature is `susssasa{sv}i`, and PySide6 (6.12) cannot put a
uint32 in a message (a Python int goes out as int32 `i`, and QDBusArgument's `<<` picks
uint16 `q`). GDBus-based daemons (GNOME Shell, dunst) reject such a call with
InvalidArgs. jeepney (pure Python, already required by keyring on Linux) marshals by the
signature we give, so the call is exactly the one the specification describes."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from PySide6.QtCore import QObject, Signal

from core import TaskRecord, TaskState

logger = logging.getLogger(__name__)

SERVICE = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
NOTIFY_SIGNATURE = "susssasa{sv}i"
APP_NAME = "Taskdeck"
SEND_TIMEOUT_S = 3.0  # an internal guard: a hung notification daemon never holds us up

NoteKind = Literal["summary", "failure"]


@dataclass(frozen=True, slots=True)
class Note:
    kind: NoteKind
    summary: str
    body: str = ""


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_text(succeeded: int, failed: int, cancelled: int, other: int) -> str:
    """ "10 jobs finished: 9 succeeded, 1 failed"."""
    total = succeeded + failed + cancelled + other
    parts = [f"{succeeded} succeeded"] if succeeded or not (failed or cancelled or other) else []
    if failed:
        parts.append(f"{failed} failed")
    if cancelled:
        parts.append(f"{cancelled} cancelled")
    if other:
        parts.append(f"{other} skipped")
    return f"{plural(total, 'job')} finished: " + ", ".join(parts)


class BatchTracker:
    """Turns the records the window sees into notes: a failure note at once, a summary
    when the queue is done."""

    def __init__(self) -> None:
        self._outcomes: dict[int, TaskState] = {}  # top-level job -> how it ended (latest)
        self._told: set[int] = set()  # jobs of this batch that had their own failure note
        self._failures_seen: set[tuple[int, int]] = set()  # (id, attempt) already told

    def observe(self, rec: TaskRecord) -> Note | None:
        if rec.parent_id is not None:
            return None
        if not rec.is_terminal:
            self._outcomes.pop(rec.id, None)  # retried: it counts when it ends again
            return None
        if rec.state == TaskState.SUPERSEDED:  # replaced by a newer submission, not an end
            return None
        self._outcomes[rec.id] = rec.state
        if rec.state != TaskState.FAILED or (rec.id, rec.attempt) in self._failures_seen:
            return None
        self._failures_seen.add((rec.id, rec.attempt))
        self._told.add(rec.id)
        return Note("failure", f"{rec.name} failed", rec.error or "")

    def finish(self) -> Note | None:
        """The queue is done: the batch's summary (None for an empty batch, or when every
        job of it already had its own failure note)."""
        outcomes, self._outcomes = self._outcomes, {}
        told, self._told = self._told, set()
        if not outcomes or set(outcomes) <= told:
            return None
        states = list(outcomes.values())
        ok = states.count(TaskState.COMPLETED)
        failed = states.count(TaskState.FAILED)
        cancelled = states.count(TaskState.CANCELLED)
        other = len(states) - ok - failed - cancelled
        return Note("summary", summary_text(ok, failed, cancelled, other))


class DesktopNotifications:
    """org.freedesktop.Notifications.Notify on the session bus."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address  # None: $DBUS_SESSION_BUS_ADDRESS at each send

    def available(self) -> bool:
        return bool(self.address or os.environ.get("DBUS_SESSION_BUS_ADDRESS"))

    def send_blocking(self, summary: str, body: str) -> int:
        """The notification's id (0 if the daemon's reply has none); raises OSError or
        jeepney's DBusErrorResponse."""
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import unwrap_msg

        target = DBusAddress(OBJECT_PATH, bus_name=SERVICE, interface=SERVICE)
        msg = new_method_call(
            target, "Notify", NOTIFY_SIGNATURE, (APP_NAME, 0, "taskdeck", summary, body, [], {}, -1)
        )
        with open_dbus_connection(bus=self.address or "SESSION") as conn:
            reply = conn.send_and_get_reply(msg, timeout=SEND_TIMEOUT_S)
        answer = unwrap_msg(reply)  # raises for an error reply
        return answer[0] if answer and isinstance(answer[0], int) else 0

    async def send(self, summary: str, body: str) -> bool:
        if not self.available():
            return False
        try:
            note_id = await asyncio.to_thread(self.send_blocking, summary, body)
        except Exception as e:  # no daemon, a refusal, a dead bus: the app tells it itself
            logger.info("desktop notification not sent (%s): %s", type(e).__name__, e)
            return False
        logger.debug("desktop notification %d: %s", note_id, summary)
        return True


class Notifier(QObject):
    """Sends notes in order, to the desktop or, failing that, inside the app.

    Signals:
        delivered(str, object): (channel, Note) once a note went out; channel is
            "desktop", or what the in-app callback says it used ("toast", "tray").
    """

    delivered = Signal(str, object)

    def __init__(
        self,
        in_app: Callable[[str], str],
        desktop: DesktopNotifications | None = None,
        enabled: Callable[[], bool] = lambda: True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.in_app = in_app
        self.desktop = desktop if desktop is not None else DesktopNotifications()
        self.enabled = enabled
        self.tracker = BatchTracker()
        self.log: list[tuple[str, Note]] = []
        self._lock = asyncio.Lock()  # FIFO: a failure note never overtakes an earlier one
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, records: list[TaskRecord]) -> None:
        for rec in records:
            note = self.tracker.observe(rec)
            if note is not None:
                self.post(note)

    def queue_done(self) -> None:
        note = self.tracker.finish()
        if note is not None:
            self.post(note)

    def post(self, note: Note) -> None:
        if not self.enabled():
            return
        task = asyncio.ensure_future(self._deliver(note))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, note: Note) -> None:
        async with self._lock:
            channel = "desktop"
            if not await self.desktop.send(note.summary, note.body):
                channel = self.in_app(f"{note.summary}: {note.body}" if note.body else note.summary)
            self.log.append((channel, note))
            self.delivered.emit(channel, note)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SEND_TIMEOUT_S + 1)
