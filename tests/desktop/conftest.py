"""The window under test: a real engine on a temp profile, the real widgets, one qasync
loop on pytest-qt's QApplication. Tests are plain synchronous qtbot tests: the Qt loop
pytest-qt spins (waitUntil, waitSignal) runs the asyncio tasks too."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from core import Engine, EngineConfig, TaskRecord
from desktop.app import App, Options, configure_application
from desktop.models.roles import QueueColumn
from desktop.profile import Profile
from desktop.views.main_window import MainWindow
from tests.desktop import kinds

T = TypeVar("T")
WAIT_MS = 10_000

if not os.environ.get("XDG_RUNTIME_DIR"):  # Qt warns without one (and warnings fail tests)
    import tempfile

    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="taskdeck-xdg-")


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
    """A qasync loop on the test's QApplication, marked running while Qt spins."""
    import qasync

    configure_application(qapp)
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        deadline = time.monotonic() + 3
        while any(not t.done() for t in pending) and time.monotonic() < deadline:
            qapp.processEvents()
            time.sleep(0.001)
        asyncio.events._set_running_loop(None)
        loop._QEventLoop__is_running = False  # already_running loops never ran run_forever
        loop.close()
        asyncio.set_event_loop(None)
        kinds.GATES.clear()


@dataclass
class Harness:
    qtbot: Any
    app: App
    profile_dir: Path

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


def open_app(qtbot: Any, profile_dir: Path, config: EngineConfig | None = None, **options: Any) -> Harness:
    profile = Profile.create(profile_dir)
    app = App(
        QApplication.instance(),  # type: ignore[arg-type]
        Options(
            profile=profile_dir,
            config=config or EngineConfig(max_concurrency=4),
            setup=kinds.register,
            **options,
        ),
        profile,
    )
    h = Harness(qtbot, app, profile_dir)
    assert h.run(app.open())
    h.wait(lambda: h.window.queue_model.is_loaded)
    return h


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    return tmp_path / "profile"


@pytest.fixture
def make_app(
    qtbot: Any, aloop: asyncio.AbstractEventLoop, profile_dir: Path
) -> Iterator[Callable[..., Harness]]:
    opened: list[Harness] = []

    def make(config: EngineConfig | None = None, directory: Path | None = None, **options: Any) -> Harness:
        h = open_app(qtbot, directory or profile_dir, config, **options)
        opened.append(h)
        return h

    yield make
    for h in opened:
        if h.app.bridge is not None and not h.app.bridge.closed:
            h.run(h.app.shutdown(), timeout=15)


@pytest.fixture
def gui(make_app: Callable[..., Harness]) -> Harness:
    return make_app()
