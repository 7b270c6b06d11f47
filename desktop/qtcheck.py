"""Turn Qt's "could not load the Qt platform plugin" abort into one clear line.

On a bare Linux Qt's xcb plugin needs system libraries that pip cannot install; without
them Qt prints five lines, the last blaming a reinstall, and aborts. We check the
libraries before QApplication exists (naming the Debian packages to install) and install
a Qt message handler first, so a fatal platform message we did not foresee still ends in
one line and exit status 1 instead of a core dump."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable, Mapping

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

logger = logging.getLogger(__name__)

# Shared libraries the xcb platform plugin of Qt >= 6.5 loads, with their Debian packages.
XCB_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libxkbcommon.so.0", "libxkbcommon0"),
    ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-image.so.0", "libxcb-image0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libxcb-randr.so.0", "libxcb-randr0"),
    ("libxcb-shape.so.0", "libxcb-shape0"),
    ("libxcb-xkb.so.1", "libxcb-xkb1"),
    ("libxcb-xfixes.so.0", "libxcb-xfixes0"),
    ("libxcb-sync.so.1", "libxcb-sync1"),
    ("libxcb-shm.so.0", "libxcb-shm0"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libGL.so.1", "libgl1"),
    ("libEGL.so.1", "libegl1"),
    ("libfontconfig.so.1", "libfontconfig1"),
    ("libdbus-1.so.3", "libdbus-1-3"),
)
# Everything `make system-deps` installs (a superset: xinerama is optional for Qt 6).
DEBIAN_PACKAGES: tuple[str, ...] = (*(pkg for _, pkg in XCB_LIBRARIES), "libxcb-xinerama0")

_PLATFORM_FAILURES = (
    "could not load the qt platform plugin",
    "no qt platform plugin could be initialized",
    "could not connect to display",
)


def missing_packages(libraries: tuple[tuple[str, str], ...] = XCB_LIBRARIES) -> list[str]:
    """Debian packages whose library cannot be loaded here."""
    missing = []
    for soname, package in libraries:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    return missing


def install_command(packages: list[str]) -> str:
    return "sudo apt-get install -y " + " ".join(packages)


def uses_xcb(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Qt will pick the xcb plugin (Linux, no other platform asked for)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip()
    if platform:
        return platform == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def preflight(environ: Mapping[str, str] | None = None) -> str | None:
    """One line saying why the window cannot open here, or None if it should."""
    env = os.environ if environ is None else environ
    if not uses_xcb(env):
        return None
    missing = missing_packages()
    if missing:
        return (
            "taskdeck: the window needs system libraries that are missing: "
            f"{', '.join(missing)}. Install them with: {install_command(missing)} "
            "(or run 'make system-deps')"
        )
    if not env.get("DISPLAY"):
        return (
            "taskdeck: no display to open the window on (DISPLAY is not set); run it in a "
            "desktop session, under 'xvfb-run -a taskdeck', or with QT_QPA_PLATFORM=offscreen"
        )
    return None


class MessageHandler:
    """Qt's messages go to our log; a fatal platform-plugin failure becomes one line."""

    def __init__(self, exit: Callable[[int], None] = os._exit) -> None:
        self._exit = exit
        self.messages: list[str] = []

    def __call__(self, mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
        lowered = message.lower()
        if mode == QtMsgType.QtFatalMsg and any(s in lowered for s in _PLATFORM_FAILURES):
            sys.stderr.write(self.explain(message) + "\n")
            sys.stderr.flush()
            logging.shutdown()
            self._exit(1)  # Qt would abort() (a core dump) once we return
            return
        self.messages.append(message)
        del self.messages[:-50]
        level = {
            QtMsgType.QtDebugMsg: logging.DEBUG,
            QtMsgType.QtInfoMsg: logging.INFO,
            QtMsgType.QtWarningMsg: logging.WARNING,
            QtMsgType.QtCriticalMsg: logging.ERROR,
            QtMsgType.QtFatalMsg: logging.CRITICAL,
        }.get(mode, logging.WARNING)
        logging.getLogger("qt").log(level, "%s", message)

    def explain(self, fatal: str) -> str:
        seen = " ".join(self.messages).lower() + " " + fatal.lower()
        missing = missing_packages()
        if missing:
            return (
                "taskdeck: Qt could not load its xcb platform plugin: missing system packages "
                f"{', '.join(missing)}; install them with: {install_command(missing)}"
            )
        if "could not connect to display" in seen:
            return (
                "taskdeck: Qt could not connect to the display; run it in a desktop session, "
                "under 'xvfb-run -a taskdeck', or with QT_QPA_PLATFORM=offscreen"
            )
        return f"taskdeck: Qt could not start its platform plugin ({fatal.strip().splitlines()[0]})"


def install_message_handler() -> MessageHandler:
    """Install before QApplication exists: platform plugins load in its constructor."""
    handler = MessageHandler()
    qInstallMessageHandler(handler)
    return handler
