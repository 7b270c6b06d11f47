"""What files dropped on the window become when the user chose it: a resize with a preset
("Resize files dropped on the window with this preset") or an upload to a saved target
("Upload files dropped on the window to this target"). One task per file, with a dedup
key, so the same file dropped twice is queued once (ux Q-21)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QSettings

from core import InvalidSubmission, SubmitOutcome
from core.jobs import net, presets, resize
from core.jobs import validate as kind_validate
from desktop import targets
from desktop.bridge import Bridge

SETTING = "dropAction"  # QSettings: "resize:<preset>" or "upload:<target name>"
RESIZED_FOLDER = "resized"  # beside the photo, when no output folder was chosen before


@dataclass(frozen=True, slots=True)
class DropAction:
    what: str  # "resize" or "upload"
    name: str  # the preset or the target

    def describe(self) -> str:
        if self.what == "resize":
            return f"Dropped files are resized with “{self.name}”"
        return f"Dropped files are uploaded to “{self.name}”"


def drop_action(settings: QSettings) -> DropAction | None:
    value = str(settings.value(SETTING, "") or "")
    what, sep, rest = value.partition(":")
    if sep and rest and what in ("resize", "upload"):
        return DropAction(what, rest)
    return None


def remember_drop_action(settings: QSettings, what: str | None, name: str = "") -> None:
    """Choose what dropped files become (None: ask, as without a choice)."""
    settings.setValue(SETTING, f"{what}:{name}" if what else "")


@dataclass(slots=True)
class Dropped:
    added: list[int]
    duplicates: list[str]  # file names already in the queue
    refused: list[str]  # "name: why"


async def queue_dropped(bridge: Bridge, action: DropAction, paths: list[str], settings: QSettings) -> Dropped:
    """Queue one task per dropped path as `action` says."""
    out = Dropped([], [], [])
    for path in paths:
        base = os.path.basename(path.rstrip(os.sep)) or path
        try:
            kind, payload, options = await _submission(bridge, action, path, settings)
        except (InvalidSubmission, KeyError) as e:
            out.refused.append(f"{base}: {e.args[0] if isinstance(e, KeyError) else e}")
            continue
        res = await bridge.submit(kind, payload, **options)
        if res.outcome in (SubmitOutcome.DUPLICATE, SubmitOutcome.REJECTED):
            out.duplicates.append(base)
        else:
            out.added.append(res.id)
    return out


async def _submission(
    bridge: Bridge, action: DropAction, path: str, settings: QSettings
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if action.what == "resize":
        payload, options = _resize_plan(path, action.name, str(settings.value("resizeOutputDir", "") or ""))
        payload = kind_validate(resize.KIND, await presets.apply(bridge.backend, resize.KIND, payload))
        return resize.KIND, payload, options
    saved = {t.name: t for t in targets.load(bridge)}
    target = saved.get(action.name)
    if target is None:
        raise KeyError(f"the upload target “{action.name}” was deleted; choose another in New upload")
    checked, options = net.prepare(target.job_kind, target.payload([path]))
    return target.job_kind, checked, options


def _resize_plan(path: str, preset: str, folder: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A resize payload of one dropped file (into the last output folder, else "resized"
    beside it) and its label "photo.jpg — preset" and dedup key (file + output folder)."""
    path = os.path.normpath(path)  # dropped paths are absolute (file URLs)
    base = os.path.basename(path.rstrip(os.sep)) or path
    folder = os.path.normpath(folder) if folder else os.path.join(os.path.dirname(path), RESIZED_FOLDER)
    payload = {"inputs": [path], "output_dir": folder, "preset": preset}
    return payload, {"label": f"{base} — {preset}", "key": f"{resize.KIND}:{path}:{folder}"}
