"""Where the window keeps things: the database, its settings (QSettings, UI state only)
and its log. `--profile DIR` puts all three in DIR (tests use a fresh one each)."""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from PySide6.QtCore import QSettings

APP = "taskdeck"
SETTINGS_VERSION = 1  # bump when the meaning of a stored UI setting changes


@dataclass(frozen=True, slots=True)
class Profile:
    db: Path
    settings_file: Path
    log_dir: Path

    @classmethod
    def create(cls, profile_dir: Path | None = None, db: Path | None = None) -> Profile:
        """The default profile lives in the platform's data, config and log directories."""
        if profile_dir is not None:
            base = profile_dir.expanduser().resolve()
            base.mkdir(parents=True, exist_ok=True, mode=0o700)
            return cls(
                db=(db or base / "tasks.db").expanduser().resolve(),
                settings_file=base / "settings.ini",
                log_dir=base / "logs",
            )
        data = Path(platformdirs.user_data_dir(APP))
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        env_db = os.environ.get("TASKDECK_DB")
        chosen = db or (Path(env_db) if env_db else data / "tasks.db")
        return cls(
            db=chosen.expanduser().resolve(),
            settings_file=Path(platformdirs.user_config_dir(APP)) / "window.ini",
            log_dir=Path(platformdirs.user_log_dir(APP)),
        )

    @property
    def log_file(self) -> Path:
        return self.log_dir / "taskdeck-window.log"

    def settings(self) -> QSettings:
        """UI state only (geometry, columns, last pane, last choices): engine settings live
        in the database. A store written by another settings version is cleared."""
        self.settings_file.parent.mkdir(parents=True, exist_ok=True)
        s = QSettings(os.fspath(self.settings_file), QSettings.Format.IniFormat)
        found = s.value("version")
        if found is not None and str(found) != str(SETTINGS_VERSION):
            s.clear()
        s.setValue("version", SETTINGS_VERSION)
        return s

    @property
    def instance_key(self) -> str:
        """The single-instance server's name: one window per user and database."""
        digest = hashlib.sha1(os.fspath(self.db).encode()).hexdigest()[:16]
        uid = os.getuid() if hasattr(os, "getuid") else 0
        return f"taskdeck-{uid}-{digest}"


def setup_logging(profile: Profile, *, verbose: bool = False) -> Path:
    """The app log: a rotating file in the log directory (and stderr with --verbose)."""
    profile.log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    handler = logging.handlers.RotatingFileHandler(
        profile.log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(fmt)
    root.addHandler(handler)
    if verbose:
        err = logging.StreamHandler()
        err.setFormatter(fmt)
        root.addHandler(err)
    logging.getLogger("qasync").setLevel(logging.INFO)  # its debug lines are per callback
    return profile.log_file
