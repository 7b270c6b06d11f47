"""The window under test: a real engine on a temp profile, the real widgets, one qasync
loop on pytest-qt's QApplication. Tests are plain synchronous qtbot tests: the Qt loop
pytest-qt spins (waitUntil, waitSignal) runs the asyncio tasks too.

Tests wait for conditions (never sleep a fixed time for something to happen), and the
waits are generous: the suite shares two cores with other work. Everything a test made with Qt dies at its teardown, on
the GUI thread (see `aloop`)."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import shiboken6
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from core import Engine, EngineConfig, TaskRecord
from desktop.app import App, Options, close_loop, configure_application
from desktop.models.roles import QueueColumn
from desktop.profile import Profile
from desktop.views.main_window import MainWindow
from tests.desktop import kinds

T = TypeVar("T")
WAIT_MS = 30_000  # a bound on waiting for a condition: reached only when a test fails
SHUTDOWN_MS = 30_000

if not os.environ.get("XDG_RUNTIME_DIR"):  # Qt warns without one (and warnings fail tests)
    import tempfile

    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="taskdeck-xdg-")

# The window tests never reach the developer's desktop session: no notification of theirs
# lands there, and Qt finds no StatusNotifier tray on it. Tests that need a bus start
# their own (tests/desktop/system_parts.py).
os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under CI a GUI test never skips for a missing system part: it fails instead.
    headless = not (os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))
    if os.environ.get("CI") and headless and shutil.which("Xvfb") is None:
        raise pytest.UsageError("CI: Xvfb is missing; `make system-deps` installs it")


@pytest.fixture(scope="session", autouse=True)
def window_manager() -> Iterator[None]:
    """openbox on the virtual display, so windows get activated and focused as on a desktop."""
    proc = None
    if os.environ.get("DISPLAY") and shutil.which("openbox") and not os.environ.get("QT_QPA_PLATFORM"):
        import subprocess

        proc = subprocess.Popen(
            ["openbox", "--sm-disable"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.3)
    yield
    if proc is not None:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def aloop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """A qasync loop on the test's QApplication, marked running while Qt spins.

    At teardown the test's Qt objects are freed here, on the GUI thread: its loop's timer
    object (close_loop), the windows its apps deleteLater()ed, and whatever else only a
    reference cycle kept alive. Left to Python's garbage collector they would be freed
    during some later test, on whichever thread ran the collection (the engine's SQLite
    threads do); Qt cannot unregister timers from another thread, so the GUI thread's
    next processEvents() (pytest-qt calls it around every test) segfaulted."""
    import qasync

    configure_application(qapp)
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            deadline = time.monotonic() + SHUTDOWN_MS / 1000
            while any(not t.done() for t in pending) and time.monotonic() < deadline:
                qapp.processEvents()
                time.sleep(0.001)
            # Widgets deleted later, and objects only a cycle kept, go while the loop still
            # works: a slot or finalizer they run may still schedule a callback on it.
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            gc.collect()
            qapp.processEvents()
            asyncio.events._set_running_loop(None)
            loop._QEventLoop__is_running = False  # already_running loops never ran run_forever
            close_loop(loop)
            asyncio.set_event_loop(None)
        finally:
            kinds.GATES.clear()
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            gc.collect()


@dataclass
class Harness:
    qtbot: Any
    app: App
    profile_dir: Path
    cleanups: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    @property
    def window(self) -> MainWindow:
        assert self.app.window is not None
        return self.app.window

    @property
    def engine(self) -> Engine:
        assert self.app.opened is not None
        backend = self.app.opened.backend
        assert isinstance(backend, Engine)
        return backend

    def run(self, coro: Awaitable[T], timeout: float = WAIT_MS / 1000) -> T:
        task = asyncio.ensure_future(coro)
        self.qtbot.waitUntil(task.done, timeout=int(timeout * 1000))
        return task.result()

    def at_teardown(self, cleanup: Callable[[], Awaitable[Any]]) -> None:
        """Run `cleanup()` when the test ends, passed or failed, while the loop still runs."""
        self.cleanups.append(cleanup)

    def close(self) -> None:
        """Shut the app down (if the test did not) and run the clean-ups, last first."""
        errors: list[BaseException] = []
        steps: list[Callable[[], Awaitable[Any]]] = list(reversed(self.cleanups))
        app = self.app
        if app is not None and app.bridge is not None and not app.bridge.closed:
            steps.insert(0, app.shutdown)
        self.cleanups.clear()
        for step in steps:
            try:
                self.run(step(), timeout=SHUTDOWN_MS / 1000)
            except Exception as e:  # the others still run
                errors.append(e)
        if app is not None:  # deleted at the loop's teardown, on the GUI thread
            for obj in (app.bridge, app):
                if obj is not None and shiboken6.isValid(obj):
                    obj.deleteLater()
        if errors:
            raise errors[0]

    def wait(self, predicate: Callable[[], Any], timeout: int = WAIT_MS) -> None:
        self.qtbot.waitUntil(lambda: bool(predicate()), timeout=timeout)

    def submit(self, kind: str, payload: Any = None, **options: Any) -> int:
        return self.run(self.engine.submit(kind, payload, **options)).id

    def record(self, task_id: int) -> TaskRecord | None:
        return self.window.queue_model.record(task_id)

    def text(self, task_id: int, column: int = QueueColumn.STATE) -> str:
        model = self.window.queue_model
        index = model.index_of(task_id, column)
        return str(index.data() or "") if index.isValid() else ""

    def wait_text(
        self, task_id: int, expected: str, column: int = QueueColumn.STATE, timeout: int = WAIT_MS
    ) -> None:
        def ok() -> bool:
            return self.text(task_id, column).startswith(expected)

        try:
            self.qtbot.waitUntil(ok, timeout=timeout)
        except Exception:
            raise AssertionError(
                f"task {task_id}: expected {expected!r}, shows {self.text(task_id, column)!r}"
            ) from None

    def open_gate(self, name: str) -> None:
        kinds.gate(name).set()

    def message_box(self, object_name: str) -> QMessageBox:
        found: list[QMessageBox] = []

        def visible() -> bool:
            found[:] = [
                w
                for w in QApplication.topLevelWidgets()
                if isinstance(w, QMessageBox) and w.objectName() == object_name and w.isVisible()
            ]
            if self.app is not None and self.app.window is not None:
                found.extend(
                    w
                    for w in self.window.findChildren(QMessageBox, object_name)
                    if w.isVisible() and w not in found
                )
            return bool(found)

        self.wait(visible)
        return found[0]

    def click(self, box: QWidget, button: str) -> None:
        b = box.findChild(QWidget, button)
        assert b is not None, f"no button {button} in {box.objectName()}"
        b.click()  # type: ignore[attr-defined]


def open_app(
    qtbot: Any,
    profile_dir: Path,
    config: EngineConfig | None = None,
    opened: list[Harness] | None = None,
    **options: Any,
) -> Harness:
    profile = Profile.create(profile_dir)
    app = App(
        QApplication.instance(),  # type: ignore[arg-type]
        Options(
            profile=profile_dir,
            config=config or EngineConfig(max_concurrency=4),
            **{"setup": kinds.register, **options},  # setup=None: the built-in kinds only
        ),
        profile,
    )
    h = Harness(qtbot, app, profile_dir)
    if opened is not None:
        opened.append(h)  # shut down at teardown even if opening fails half-way
    assert h.run(app.open())
    h.wait(lambda: h.window.queue_model.is_loaded)
    return h


@pytest.fixture(scope="session")
def _xdg_open_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stub = tmp_path_factory.mktemp("xdg-bin")
    (stub / "xdg-open").write_text('#!/bin/sh\necho "$1" >> "$TASKDECK_XDG_LOG"\n')
    (stub / "xdg-open").chmod(0o755)
    return stub


@pytest.fixture
def xdg_open(_xdg_open_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stub `xdg-open` first on PATH that logs its argument to the returned file (ux Q-18).
    One stub for the session: Qt looks the launcher up once per process and keeps its
    full path, so a stub in each test's own folder would only be found by the first."""
    log = tmp_path / "xdg-open.log"
    monkeypatch.setenv("PATH", f"{_xdg_open_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TASKDECK_XDG_LOG", str(log))
    return log


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    return tmp_path / "profile"


@pytest.fixture
def harness(qtbot: Any, aloop: asyncio.AbstractEventLoop, profile_dir: Path) -> Iterator[Harness]:
    """A harness for a test that makes its App (and engines) itself; closed at teardown."""
    h = Harness(qtbot, None, profile_dir)  # type: ignore[arg-type]
    yield h
    h.close()


@pytest.fixture
def make_app(
    qtbot: Any, aloop: asyncio.AbstractEventLoop, profile_dir: Path
) -> Iterator[Callable[..., Harness]]:
    opened: list[Harness] = []

    def make(config: EngineConfig | None = None, directory: Path | None = None, **options: Any) -> Harness:
        h = open_app(qtbot, directory or profile_dir, config, opened, **options)
        return h

    yield make
    errors: list[BaseException] = []
    for h in reversed(opened):
        try:
            h.close()
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def gui(make_app: Callable[..., Harness]) -> Harness:
    return make_app()
