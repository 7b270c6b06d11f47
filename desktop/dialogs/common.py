"""Awaiting dialogs without exec(): open() them and await a future that `finished`
resolves. qasync cannot re-enter its loop, so exec() inside an async slot breaks it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import shiboken6
from PySide6.QtWidgets import QAbstractButton, QCheckBox, QDialog, QMessageBox, QWidget


async def ask(dialog: QDialog) -> int:
    """Open `dialog` (window-modal) and wait until it finishes; returns its result code."""
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def done(result: int) -> None:
        if not fut.done():
            fut.set_result(result)

    dialog.finished.connect(done)
    dialog.open()
    try:
        return await fut
    finally:
        dialog.finished.disconnect(done)


@dataclass(frozen=True, slots=True)
class Choice:
    text: str
    role: QMessageBox.ButtonRole
    name: str  # objectName, for tests and QSS


@dataclass(frozen=True, slots=True)
class Answer:
    choice: str | None  # the objectName of the button pressed; None if closed
    checked: bool  # the "don't ask again" box


def message_box(
    parent: QWidget | None,
    *,
    name: str,
    title: str,
    text: str,
    informative: str = "",
    icon: QMessageBox.Icon = QMessageBox.Icon.Question,
    choices: tuple[Choice, ...] = (),
    default: str | None = None,
    checkbox: str | None = None,
) -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName(name)
    box.setAccessibleName(title)
    box.setWindowTitle(title)
    box.setIcon(icon)
    box.setText(text)
    if informative:
        box.setInformativeText(informative)
    for c in choices:
        button = box.addButton(c.text, c.role)
        button.setObjectName(c.name)
        button.setAccessibleName(c.text.replace("&", ""))
        if c.name == default:
            box.setDefaultButton(button)
    if checkbox:
        cb = QCheckBox(checkbox, box)  # parented: the box keeps it alive
        cb.setObjectName("dontAskAgain")
        cb.setAccessibleName(checkbox)
        box.setCheckBox(cb)
    return box


async def ask_box(box: QMessageBox) -> Answer:
    await ask(box)
    clicked: QAbstractButton | None = box.clickedButton()
    cb = box.checkBox()
    return Answer(clicked.objectName() if clicked is not None else None, bool(cb and cb.isChecked()))


async def confirm(
    parent: QWidget | None,
    *,
    name: str,
    title: str,
    text: str,
    accept: str,
    informative: str = "",
    checkbox: str | None = None,
    destructive: bool = False,
) -> Answer:
    """A question with [accept] [Cancel]; Answer.choice is "accept" or "cancel"."""
    box = message_box(
        parent,
        name=name,
        title=title,
        text=text,
        informative=informative,
        icon=QMessageBox.Icon.Warning if destructive else QMessageBox.Icon.Question,
        choices=(
            Choice(accept, QMessageBox.ButtonRole.AcceptRole, "accept"),
            Choice("Cancel", QMessageBox.ButtonRole.RejectRole, "cancel"),
        ),
        default="cancel" if destructive else "accept",
        checkbox=checkbox,
    )
    if destructive:  # the button that destroys says so in the error colour (the QSS)
        button = box.findChild(QAbstractButton, "accept")
        if button is not None:
            button.setProperty("destructive", True)
    answer = await ask_box(box)
    _retire(box)
    return answer


_last: list[QMessageBox] = []


def _retire(box: QMessageBox) -> None:
    """Delete the previous finished box, keep this one a while: code that still holds it
    (a test reading its text) must not meet a deleted C++ object."""
    while _last:
        old = _last.pop()
        if shiboken6.isValid(old):  # its parent window may have gone, and the box with it
            old.deleteLater()
    _last.append(box)
