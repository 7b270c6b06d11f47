"""The app shell: arguments, one qasync loop for the window and the engine, single
instance, the engine's life, quitting, and the hygiene around them (app log, uncaught
exceptions, an unusable database, a display Qt cannot open)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import shiboken6
from PySide6.QtCore import QByteArray, QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QWidget

from core import CorruptDatabase, EngineConfig, SchemaTooNew, TaskdeckError
from desktop import qtcheck, theme
from desktop.backend import Opened, Setup, open_backend, set_aside
from desktop.bridge import Bridge
from desktop.dialogs.common import Choice, ask, ask_box, confirm, message_box
from desktop.integration import Integration
from desktop.profile import Profile, setup_logging
from desktop.views.main_window import MainWindow

logger = logging.getLogger(__name__)
READY_MARK = "window ready"


@dataclass(slots=True)
class Options:
    db: Path | None = None
    profile: Path | None = None
    minimized: bool = False
    files: list[str] = field(default_factory=list)
    verbose: bool = False
    config: EngineConfig | None = None  # tests inject a clock or limits
    setup: Setup | None = None  # tests register their kinds


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="taskdeck", description="Taskdeck: a desktop job manager.")
    p.add_argument("files", nargs="*", help="files to queue (handed to the open window if there is one)")
    p.add_argument(
        "--db", type=Path, metavar="PATH", help="the database (default: $TASKDECK_DB or the data dir)"
    )
    p.add_argument("--profile", type=Path, metavar="DIR", help="keep database, settings and log in DIR")
    p.add_argument("--minimized", action="store_true", help="start with the window minimized")
    p.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    ns = p.parse_args(argv)
    return Options(
        db=ns.db, profile=ns.profile, minimized=ns.minimized, files=list(ns.files), verbose=ns.verbose
    )


# -- single instance ---------------------------------------------------------------------------


def send_to_running(key: str, files: Sequence[str], timeout_ms: int = 1500) -> bool:
    """Hand our files to the window already open on this database; False if none is."""
    sock = QLocalSocket()
    sock.connectToServer(key)
    if not sock.waitForConnected(timeout_ms):
        return False
    message = json.dumps({"files": [os.path.abspath(f) for f in files], "raise": True}).encode() + b"\n"
    sock.write(QByteArray(message))
    sock.flush()
    sock.waitForBytesWritten(timeout_ms)
    sock.waitForReadyRead(timeout_ms)  # the window says "ok" once it took the message
    sock.disconnectFromServer()
    return True


class InstanceServer(QObject):
    """Listens for later launches on the same database.

    Signals:
        message(dict): what a later launch sent ({"files": [...], "raise": True}).
    """

    message = Signal(object)

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        if self.server.listen(self.key):
            return True
        QLocalServer.removeServer(self.key)  # a stale socket of a killed window
        return self.server.listen(self.key)

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            buf = bytearray()

            def read(s: QLocalSocket = sock, b: bytearray = buf) -> None:
                b.extend(bytes(s.readAll().data()))
                if b.endswith(b"\n"):
                    try:
                        msg = json.loads(b.decode())
                    except ValueError:
                        msg = {}
                    s.write(QByteArray(b"ok\n"))
                    s.flush()
                    s.disconnectFromServer()
                    self.message.emit(msg if isinstance(msg, dict) else {})

            sock.readyRead.connect(read)
            sock.disconnected.connect(sock.deleteLater)

    def close(self) -> None:
        self.server.close()


# -- the app -----------------------------------------------------------------------------------


class App(QObject):
    """Opens the database (or attaches to its worker), shows the window, and quits."""

    def __init__(
        self, qapp: QApplication, options: Options, profile: Profile, log_path: Path | None = None
    ) -> None:
        super().__init__()
        self.qapp = qapp
        self.options = options
        self.profile = profile
        self.log_path = log_path or profile.log_file
        self.settings = profile.settings()
        self.window: MainWindow | None = None
        self.bridge: Bridge | None = None
        self.opened: Opened | None = None
        self.instance: InstanceServer | None = None
        self.integration: Integration | None = None
        self._done: asyncio.Future[int] | None = None
        self._quitting = False
        self._tasks: set[asyncio.Task[Any]] = set()

    async def open(self) -> bool:
        """Open the backend and the window; False if the user chose to quit instead."""
        theme.apply_theme(self.qapp, theme.env_theme() or str(self.settings.value("theme", "system")))
        opened = await self._open_database()
        if opened is None:
            return False
        self.opened = opened
        clock = self.options.config.clock if self.options.config is not None else None
        self.bridge = Bridge(
            opened.backend, attached=opened.attached, holder_pid=opened.holder_pid, clock=clock
        )
        self.window = MainWindow(self.bridge, self.settings, os.fspath(self.log_path))
        self.window.quit_requested.connect(self.request_quit)
        self.window.queue_model.loaded.connect(self._loaded)
        await self.bridge.start()
        self.window.schedules_pane.load()  # after start: later changes arrive as events
        self.window.show_recovery(opened.recovery)
        self.window.history_pane.set_kinds([k.kind for k in self.window.kinds()])
        self.instance = InstanceServer(self.profile.instance_key, self)
        if not self.instance.listen():
            logger.warning("single-instance server %s did not start", self.profile.instance_key)
        self.instance.message.connect(self._remote)
        self.integration = Integration(
            self.window, self.bridge, self.settings, self.request_quit, self.options.profile, parent=self
        )
        start_min = self.options.minimized or self.window.ui_settings().start_minimized
        if start_min and self.integration.tray.is_shown():
            logger.info("started in the tray")  # hidden, with the tray icon to bring it back
        elif start_min:
            logger.info("started minimized (no system tray)")
            self.window.showMinimized()  # no tray: minimized, never invisible
        else:
            self.window.show()
        if self.options.files:
            self.window.add_files(self.options.files)
        return True

    def _loaded(self) -> None:
        if self.window is None:
            return
        counts = self.window.queue_model.counts()
        logger.info(
            "%s: %d active tasks, %d running",
            READY_MARK,
            sum(counts.values()),
            sum(1 for r in self.window.queue_model.records() if r.state.value == "running"),
        )

    async def _open_database(self) -> Opened | None:
        path = self.profile.db
        while True:
            try:
                return await open_backend(path, self.options.config, self.options.setup)
            except (CorruptDatabase, SchemaTooNew) as e:
                logger.error("cannot open %s: %s", path, e)
                choice = await self._database_problem(path, e)
                if choice is None:
                    return None
                path = choice

    async def _database_problem(self, path: Path, error: TaskdeckError) -> Path | None:
        """Ask what to do about an unusable database: another file, a fresh one, or quit."""
        newer = isinstance(error, SchemaTooNew)
        box = message_box(
            None,
            name="databaseProblem",
            title="Taskdeck cannot open its database",
            text=(
                f"{path.name} was written by a newer version of Taskdeck."
                if newer
                else f"{path.name} is not a usable Taskdeck database."
            ),
            informative=(
                f"{error}\n\nYou can open another database, or start with an empty one: "
                "the old file is kept beside it, renamed, and nothing in it is deleted."
            ),
            icon=QMessageBox.Icon.Warning,
            choices=(
                Choice("Open another…", QMessageBox.ButtonRole.ActionRole, "openAnother"),
                Choice("Start fresh", QMessageBox.ButtonRole.AcceptRole, "startFresh"),
                Choice("Quit", QMessageBox.ButtonRole.RejectRole, "quit"),
            ),
            default="startFresh",
        )
        self.problem_box = box
        answer = await ask_box(box)
        box.deleteLater()
        if answer.choice == "startFresh":
            kept = await asyncio.to_thread(set_aside, path)
            logger.warning("set %s aside as %s and started fresh", path, kept)
            return path
        if answer.choice == "openAnother":
            dialog = QFileDialog(None, "Open a Taskdeck database", os.fspath(path.parent))
            dialog.setObjectName("openDatabaseDialog")
            dialog.setFileMode(QFileDialog.FileMode.AnyFile)
            dialog.setNameFilter("Taskdeck databases (*.db);;All files (*)")
            if await ask(dialog) == QFileDialog.DialogCode.Accepted and dialog.selectedFiles():
                return Path(dialog.selectedFiles()[0])
            return await self._database_problem(path, error)
        return None

    def _remote(self, msg: dict[str, Any]) -> None:
        """A later launch on this database: raise the window and queue its files."""
        w = self.window
        if w is None:
            return
        logger.info("another launch handed over %d files", len(msg.get("files") or []))
        if w.isMinimized():
            w.showNormal()
        w.show()
        w.raise_()
        w.activateWindow()
        files = [f for f in msg.get("files") or [] if isinstance(f, str)]
        if files:
            w.add_files(files)

    # -- quitting ----------------------------------------------------------------------------

    def request_quit(self) -> None:
        if self._quitting:
            return
        task = asyncio.ensure_future(self._quit_flow(confirm_first=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def quit_now(self) -> None:
        """SIGTERM/SIGINT: no questions."""
        if not self._quitting:
            task = asyncio.ensure_future(self._quit_flow(confirm_first=False))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _quit_flow(self, *, confirm_first: bool) -> None:
        w, bridge = self.window, self.bridge
        if w is None or bridge is None:
            self._finish(0)
            return
        running = w.running_count()
        if confirm_first and running and not bridge.attached and w.ui_settings().confirm_quit:
            self._quitting = True  # a second Ctrl+Q while asking is ignored
            answer = await confirm(
                w,
                name="confirmQuit",
                title="Quit Taskdeck",
                text=f"{running} job{'s are' if running != 1 else ' is'} running.",
                informative="They will pause and resume when you next open the app.",
                accept="Quit",
                checkbox="Don't ask again",
            )
            self._quitting = False
            if answer.choice != "accept":
                return
            if answer.checked:
                self.settings.setValue("confirmQuit", False)
        self._quitting = True
        await self.shutdown()
        self._finish(0)

    async def shutdown(self) -> None:
        """Save the layout, carry out confirmed clears, stop the engine at once (running
        tasks keep their checkpoints), close the window."""
        w, bridge = self.window, self.bridge
        if self.instance is not None:
            self.instance.close()
        if self.integration is not None:
            await self.integration.close()
        if w is not None:
            w.toast.flush()
            w.save_state()
            try:
                await w.history_pane.commit_pending()
            except TaskdeckError:
                logger.exception("clearing history at quit failed")
        if bridge is not None and not bridge.closed:
            t0 = time.monotonic()
            await bridge.close(stop_engine=not (self.opened and self.opened.attached))
            logger.info("engine stopped in %.2f s", time.monotonic() - t0)
        if w is not None:
            w.allow_close = True
            w.stop_timers()
            w.close()
            w.deleteLater()

    def _finish(self, code: int) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(code)

    async def run(self) -> int:
        """Open, then wait until the user quits; the exit status."""
        self._done = asyncio.get_running_loop().create_future()
        if not await self.open():
            return 1
        logger.info("window open on %s", self.profile.db)
        return await self._done


# -- hygiene -----------------------------------------------------------------------------------


class CrashReporter:
    """An uncaught exception is logged and shown in a dialog naming the log file, instead
    of the window vanishing or going on silently."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._last = 0.0
        self.box: QMessageBox | None = None

    def __call__(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        logger.critical("uncaught exception", exc_info=(kind, value, tb))
        self.show("".join(traceback.format_exception_only(kind, value)).strip())

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        logger.critical("error in the event loop: %s", context.get("message"), exc_info=exc)
        self.show(str(exc or context.get("message")))

    def show(self, summary: str) -> None:
        now = time.monotonic()
        if now - self._last < 5 or QApplication.instance() is None:
            return
        self._last = now
        parent: QWidget | None = QApplication.activeWindow()
        box = message_box(
            parent,
            name="crashDialog",
            title="Something went wrong",
            text="Taskdeck ran into an unexpected error.",
            informative=(
                f"{summary}\n\nThe details were written to the log:\n{self.log_path}\n\n"
                "Your jobs are safe: they are stored in the database."
            ),
            icon=QMessageBox.Icon.Critical,
            choices=(Choice("Close", QMessageBox.ButtonRole.AcceptRole, "close"),),
        )
        self.box = box
        box.open()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a qasync loop and free its Qt objects now, on this (the GUI) thread.

    qasync runs every asyncio callback on a Qt timer of one QObject, and its close() only
    marks that object stopped: the timers of callbacks still pending (a cancelled task's
    sleep, an engine wake-up) stay registered until they fire. Left to Python, the object
    is freed whenever the garbage collector reaches the loop, on whichever thread happens
    to run the collection (the engine's SQLite threads do). Qt cannot unregister a timer
    from another thread ("QObject::~QObject: Timers cannot be stopped from another
    thread"), so the next time that timer is due, the GUI thread's event dispatcher sends
    it to freed memory and the process dies with a segmentation fault."""
    if not loop.is_closed():
        loop.close()
    timer = getattr(loop, "_timer", None)
    if isinstance(timer, QObject) and shiboken6.isValid(timer):
        shiboken6.delete(timer)  # here, on its own thread: Qt unregisters its timers
        # qasync's call_soon/call_later do not check for a closed loop: a late caller gets
        # asyncio's usual error instead of one about a deleted C++ object.
        loop._add_callback = _closed_loop_callback  # type: ignore[attr-defined]


def _closed_loop_callback(handle: asyncio.Handle, delay: float = 0) -> asyncio.Handle:
    raise RuntimeError(f"Event loop is closed (a callback came too late: {handle!r})")


def configure_application(app: QApplication) -> None:
    app.setApplicationName("Taskdeck")
    app.setApplicationDisplayName("Taskdeck")
    app.setOrganizationName("Taskdeck")
    app.setDesktopFileName("taskdeck")
    app.setQuitOnLastWindowClosed(False)


def main(argv: Sequence[str] | None = None) -> int:
    """`taskdeck` with no command: open the window."""
    options = parse_args(argv)
    qtcheck.install_message_handler()
    problem = qtcheck.preflight()
    if problem is not None:
        sys.stderr.write(problem + "\n")
        return 1
    profile = Profile.create(options.profile, options.db)
    log_path = setup_logging(profile, verbose=options.verbose)
    logger.info("starting: pid %d, database %s", os.getpid(), profile.db)
    qapp = QApplication([sys.argv[0] if sys.argv else "taskdeck"])
    configure_application(qapp)
    if send_to_running(profile.instance_key, options.files):
        sys.stdout.write(
            f"Taskdeck is already open on {profile.db}; handed it {len(options.files)} file(s).\n"
        )
        return 0
    import qasync

    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    reporter = CrashReporter(log_path)
    sys.excepthook = reporter
    loop.set_exception_handler(reporter.loop_handler)
    app = App(qapp, options, profile, log_path)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, app.quit_now)
    # Python signal handlers only run between bytecodes; wake the interpreter regularly.
    keepalive = QTimer()
    keepalive.start(250)
    keepalive.timeout.connect(lambda: None)
    try:
        code = loop.run_until_complete(app.run())
    except Exception:
        logger.critical("the window failed", exc_info=True)
        sys.stderr.write(f"taskdeck: the window failed; see {log_path}\n")
        return 1
    finally:
        loop.stop()
        close_loop(loop)
    logger.info("exiting with %d", code)
    return int(code)
