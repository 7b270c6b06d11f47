"""The Qt binding the window runs on keeps Python's reference counts straight.

PySide6 6.12.0 on CPython 3.11 dropped one reference to None on every call of a method
returning void; the window, which calls thousands of them a minute, aborted with
"none_dealloc" after about a minute of running jobs (pyproject.toml excludes it). This
guards against a release with the same defect being installed again."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QToolButton


def test_void_qt_calls_keep_the_reference_count_of_none(qapp: QApplication) -> None:
    button = QToolButton()
    calls = 5_000
    before = sys.getrefcount(None)
    for i in range(calls):
        button.setText(str(i))
        button.setToolTip("tip")
    lost = before - sys.getrefcount(None)
    # Unrelated code may take or drop a handful of references meanwhile, never thousands.
    assert abs(lost) < calls // 10, f"{lost} references to None lost in {2 * calls} void calls"
