"""New-job dialogs of the network kinds: New upload (to a saved or new S3 or HTTP/WebDAV
target), New download, and the credentials entry that keeps a secret in the OS keyring
(core.jobs.net.credentials); the payload only ever names the entry."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core import KindInfo, TaskdeckError
from core.jobs.net import credentials
from desktop import targets
from desktop.bridge import Bridge
from desktop.dialogs.job_form import FieldError, JobDialog, PathEdit, PathsEdit, own, spin
from desktop.targets import Target
from desktop.views.widgets import name

NEW_TARGET = "(a new target)"
TYPES = (
    ("S3 or S3-compatible bucket", "s3", "PUT", False),
    ("HTTP PUT", "http", "PUT", False),
    ("HTTP POST (form upload)", "http", "POST", False),
    ("WebDAV", "http", "PUT", True),
)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_HEADER_LINE = re.compile(r"^([^:]*):(.*)$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")  # RFC 9110 token
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie")
OWN_HEADERS = ("host", "content-length", "transfer-encoding", "connection", "range", "accept-encoding")
KB = 1000  # KB/s as the status bar and the bandwidth dialog count them
MiB = 1024 * 1024
AUTO_PART = 4  # MiB: the part-size box's lowest value, shown as "automatic"


def headers_edit(object_name: str) -> QPlainTextEdit:
    box = QPlainTextEdit()
    name(box, object_name, "Extra request headers")
    box.setPlaceholderText("optional, one per line: Cache-Control: max-age=3600")
    box.setFixedHeight(56)
    box.setTabChangesFocus(True)
    return box


def parse_headers(text: str, secret_advice: str) -> dict[str, str]:
    """ "Name: value" lines (blank lines skipped). Raises FieldError("headers") naming the
    line: not a header, a secret (`secret_advice` says where it goes instead), one Taskdeck
    sets itself, or a name given twice."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _HEADER_LINE.match(line.strip())
        if m is None:
            raise FieldError("headers", f"line {n}: write Name: value")
        key, value = m.group(1).strip(), m.group(2).strip()
        if not _HEADER_NAME.match(key):
            raise FieldError("headers", f"line {n}: {key!r} is not a header name (letters, digits, - and _)")
        low = key.lower()
        if low in SECRET_HEADERS:
            raise FieldError("headers", f"line {n}: {key} is a secret: {secret_advice}")
        if low in OWN_HEADERS:
            raise FieldError("headers", f"line {n}: Taskdeck sets {key} itself")
        if low in seen:
            raise FieldError("headers", f"line {n}: {key} is already on line {seen[low]}")
        seen[low] = n
        out[key] = value
    return out


UPLOAD_SECRET_ADVICE = "keep it in the keyring with Set secret… instead"
DOWNLOAD_SECRET_ADVICE = "name a keyring entry in Credentials instead"


def format_headers(headers: tuple[tuple[str, str], ...] | dict[str, str]) -> str:
    items = headers.items() if isinstance(headers, dict) else headers
    return "\n".join(f"{k}: {v}" for k, v in items)


def speed_limit_spin(object_name: str) -> QSpinBox:
    box = spin(object_name, "This job's own speed limit, in KB/s", 0, 10_000_000, "no limit of its own")
    box.setSuffix(" KB/s")
    box.setSingleStep(100)
    return box


def speed_limit(box: QSpinBox) -> dict[str, Any]:
    """The payload's bandwidth_limit (bytes/s) for the box, or nothing when unset."""
    return {"bandwidth_limit": box.value() * KB} if box.value() else {}


def no_keyring_text() -> str:
    return (
        "No keyring is available on this computer, so Taskdeck cannot keep a secret. Install and "
        "unlock one (GNOME Keyring, KWallet…), or write “env” as the credentials name to use "
        "the standard environment variables (AWS_ACCESS_KEY_ID…, TASKDECK_HTTP_TOKEN…)."
    )


class CredentialsDialog(QDialog):
    """Keep a secret in the OS keyring under a name; says plainly when there is no keyring."""

    def __init__(self, entry: str, s3: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name(self, "credentialsDialog", "Credentials")
        self.setWindowTitle("Credentials")
        self.setMinimumWidth(460)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.entry = QLineEdit(entry)
        name(self.entry, "credName", "Name of the keyring entry")
        form.addRow("&Name:", self.entry)
        self.kind = QComboBox()
        name(self.kind, "credKind", "Kind of secret")
        self.kind.addItem("S3 access key", "s3")
        self.kind.addItem("User name and password", "basic")
        self.kind.addItem("Token (Bearer)", "bearer")
        self.kind.setCurrentIndex(0 if s3 else 1)
        form.addRow("&Kind:", self.kind)
        self.first = QLineEdit()
        name(self.first, "credFirst", "Access key ID or user name")
        self.first_label = QLabel()
        self.first_label.setBuddy(self.first)
        form.addRow(self.first_label, self.first)
        self.second = QLineEdit()
        name(self.second, "credSecret", "Secret")
        self.second.setEchoMode(QLineEdit.EchoMode.Password)
        self.second_label = QLabel()
        self.second_label.setBuddy(self.second)
        form.addRow(self.second_label, self.second)
        self.form = form
        lay.addLayout(form)
        self.message = QLabel()
        name(self.message, "credMessage", "Keyring status")
        self.message.setWordWrap(True)
        self.message.setProperty("role", "error")
        self.message.hide()
        lay.addWidget(self.message)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save.setText("Keep in keyring")
        name(self.save, "credSave", "Keep in keyring")
        self.buttons.accepted.connect(self.store)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.kind.currentIndexChanged.connect(lambda _: self._kind_changed())
        self._kind_changed()
        self.available = credentials.available()
        if not self.available:
            self.show_message(no_keyring_text())
            self.save.setEnabled(False)

    def _kind_changed(self) -> None:
        kind = self.kind.currentData()
        # with access keys, as Name and Kind have (Alt+letter moves there)
        titles = {"s3": ("&Access key ID:", "S&ecret key:"), "basic": ("&User name:", "Pass&word:")}
        first, second = titles.get(kind, ("", "&Token:"))
        self.first_label.setText(first)
        self.second_label.setText(second)
        self.form.setRowVisible(self.first, kind != "bearer")

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def secret(self) -> credentials.Credential:
        kind = self.kind.currentData()
        a, b = self.first.text().strip(), self.second.text()
        if kind == "s3":
            return credentials.S3Credentials(access_key_id=a, secret_access_key=b)
        if kind == "basic":
            return credentials.BasicAuth(username=a, password=b)
        return credentials.BearerToken(token=b)

    def store(self) -> None:
        """Keep the secret (in a thread: a keyring may talk D-Bus); close when it is kept."""
        if not self.second.text() or (self.kind.currentData() != "bearer" and not self.first.text().strip()):
            self.show_message("Fill in both fields.")
            return
        secret, entry = self.secret(), self.entry.text().strip()
        self.save.setEnabled(False)

        async def go() -> None:
            try:
                await asyncio.to_thread(credentials.store, entry, secret)
            except credentials.NoKeyring:
                self.show_message(no_keyring_text())
                return
            except TaskdeckError as e:
                self.show_message(str(e))
                self.save.setEnabled(True)
                return
            self.accept()

        own(self, go())


class UploadDialog(JobDialog):
    """Upload files and folders to a saved target, or a new one (saved on request)."""

    KIND = "upload.s3"  # or upload.http, by the chosen type

    def __init__(
        self,
        info: dict[str, KindInfo | None],
        bridge: Bridge,
        saved: list[Target],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(info.get("upload.s3"), "New upload", "uploadDialog", parent)
        self._infos = info
        self.bridge = bridge
        self._targets: dict[str, Target] = {}
        self._filling = False
        self.credentials_dialog: CredentialsDialog | None = None
        self.inputs = PathsEdit("uploadInputs", "Files and folders to upload")
        self.add_row("inputs", "&Files:", self.inputs)
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        self.target = QComboBox()
        name(self.target, "uploadTarget", "Saved target")
        h.addWidget(self.target, 1)
        self.save_target = QPushButton("Save target")
        name(self.save_target, "uploadSaveTarget", "Save this target")
        self.save_target.clicked.connect(self.save_current_target)
        h.addWidget(self.save_target)
        self.delete_target = QPushButton("Delete")
        name(self.delete_target, "uploadDeleteTarget", "Delete this saved target")
        self.delete_target.clicked.connect(self._delete_target)
        h.addWidget(self.delete_target)
        self.add_row("target", "&Target:", row)
        self.target_name = QLineEdit()
        name(self.target_name, "uploadTargetName", "Name of the target")
        self.target_name.setPlaceholderText("e.g. Photos bucket (to save it for next time)")
        self.add_row("target_name", "Target na&me:", self.target_name)
        self.type = QComboBox()
        name(self.type, "uploadType", "Kind of target")
        for title, *_ in TYPES:
            self.type.addItem(title)
        self.add_row("type", "T&ype:", self.type)
        self.endpoint = QLineEdit()
        name(self.endpoint, "uploadEndpoint", "S3 endpoint URL")
        self.endpoint.setPlaceholderText("empty for AWS; e.g. https://s3.example.com for others")
        self.add_row("endpoint_url", "&Endpoint:", self.endpoint)
        self.region = QLineEdit()
        name(self.region, "uploadRegion", "Region")
        self.region.setPlaceholderText("optional, e.g. eu-west-1")
        self.add_row("region", "&Region:", self.region)
        self.bucket = QLineEdit()
        name(self.bucket, "uploadBucket", "Bucket")
        self.add_row("bucket", "&Bucket:", self.bucket)
        self.prefix = QLineEdit()
        name(self.prefix, "uploadPrefix", "Folder in the bucket")
        self.prefix.setPlaceholderText("optional, e.g. photos/2026/")
        self.add_row("prefix", "Fol&der:", self.prefix)
        self.url = QLineEdit()
        name(self.url, "uploadUrl", "Address to upload to")
        self.url.setPlaceholderText("https://example.com/uploads/ (a trailing / adds each file's name)")
        self.add_row("url", "&Address:", self.url)
        crow = QWidget()
        ch = QHBoxLayout(crow)
        ch.setContentsMargins(0, 0, 0, 0)
        self.credentials = QLineEdit()
        name(self.credentials, "uploadCredentials", "Credentials: keyring entry name")
        self.credentials.setPlaceholderText("keyring entry name, “env”, or empty")
        ch.addWidget(self.credentials, 1)
        self.set_secret = QPushButton("Set secret…")
        name(self.set_secret, "uploadSetSecret", "Keep a secret in the keyring")
        self.set_secret.clicked.connect(self.open_credentials)
        ch.addWidget(self.set_secret)
        self.add_row(
            "credentials", "&Credentials:", crow, "only the name is saved; the secret stays in the keyring"
        )
        self.watch(self.credentials)
        self.headers = headers_edit("uploadHeaders")
        self.add_row(
            "headers", "&Headers:", self.headers, "saved with the target; never Authorization or Cookie"
        )
        self.part_size = spin(
            "uploadPartSize", "Part size of big files, in MiB", AUTO_PART, 5120, "automatic (8 MiB)"
        )
        self.part_size.setSuffix(" MiB")
        self.add_row(
            "part_size", "Part si&ze:", self.part_size, "files of 8 MiB or more go up in parts of this size"
        )
        self.speed = speed_limit_spin("uploadSpeedLimit")
        self.add_row(
            "bandwidth_limit", "&Speed limit:", self.speed, "this job only; the global limits apply too"
        )
        self.for_drops = QCheckBox("Upload files dropped on the window to this target")
        name(self.for_drops, "uploadForDrops", "Upload dropped files here")
        self.form.addRow("", self.for_drops)
        self.type.currentIndexChanged.connect(lambda _: self._type_changed())
        self.target.currentIndexChanged.connect(lambda _: self._target_chosen())
        self.set_targets(saved)
        self._type_changed()
        self.finish_layout()

    # -- targets ---------------------------------------------------------------------------

    def set_targets(self, saved: list[Target], current: str | None = None) -> None:
        current = current if current is not None else str(self.target.currentData() or "")
        self._targets = {t.name: t for t in saved}
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItem(NEW_TARGET, "")
        for t in saved:
            self.target.addItem(f"{t.name} — {t.describe()}", t.name)
        self.target.setCurrentIndex(max(0, self.target.findData(current)))
        self.target.blockSignals(False)
        self._target_chosen()

    def choose_target(self, target: str) -> None:
        i = self.target.findData(target)
        if i >= 0:
            self.target.setCurrentIndex(i)

    def _target_chosen(self) -> None:
        t = self._targets.get(str(self.target.currentData() or ""))
        self.delete_target.setEnabled(t is not None)
        self.for_drops.setEnabled(t is not None)
        if t is None:
            self._changed()
            return
        self._show_target(t)

    def _show_target(self, t: Target) -> None:
        self._filling = True
        try:
            self.target_name.setText(t.name)
            for i, (_, kind, method, webdav) in enumerate(TYPES):
                if kind == t.kind and (kind == "s3" or (method == t.method and webdav == t.webdav)):
                    self.type.setCurrentIndex(i)
                    break
            self.endpoint.setText(t.endpoint_url)
            self.region.setText(t.region)
            self.bucket.setText(t.bucket)
            self.prefix.setText(t.prefix)
            self.url.setText(t.url)
            self.credentials.setText(t.credentials)
            self.headers.setPlainText(format_headers(t.headers))
            self.part_size.setValue(t.part_size // MiB if t.part_size else AUTO_PART)
        finally:
            self._filling = False
        self._type_changed()

    def current_target(self) -> Target:
        """The target the fields describe (headers that do not parse are left out: the
        form says so under the field, and the job cannot be added until they do)."""
        _, kind, method, webdav = TYPES[self.type.currentIndex()]
        try:
            headers = (
                tuple(parse_headers(self.headers.toPlainText(), UPLOAD_SECRET_ADVICE).items())
                if kind != "s3"
                else ()
            )
        except FieldError:
            headers = ()
        part = self.part_size.value()
        return Target(
            name=self.target_name.text().strip(),
            kind=kind,
            endpoint_url=self.endpoint.text().strip() if kind == "s3" else "",
            region=self.region.text().strip() if kind == "s3" else "",
            bucket=self.bucket.text().strip() if kind == "s3" else "",
            prefix=self.prefix.text().strip() if kind == "s3" else "",
            url=self.url.text().strip() if kind != "s3" else "",
            method=method,
            webdav=webdav,
            credentials=self.credentials.text().strip(),
            headers=headers,
            part_size=part * MiB if kind == "s3" and part > AUTO_PART else 0,
        )

    def save_current_target(self) -> None:
        target = self.current_target()
        if not target.name:
            self._errors["target_name"].setText("give the target a name to save it")
            self._errors["target_name"].show()
            return
        if target.kind != "s3":
            try:  # never save a target without the headers the user typed
                parse_headers(self.headers.toPlainText(), UPLOAD_SECRET_ADVICE)
            except FieldError as e:
                self._errors["headers"].setText(str(e))
                self._errors["headers"].show()
                return

        async def save() -> None:
            await targets.save(self.bridge, target)
            self.set_targets(targets.load(self.bridge), target.name)

        self.bridge.spawn(save(), "Save target")

    def _delete_target(self) -> None:
        current = str(self.target.currentData() or "")

        async def delete() -> None:
            await targets.delete(self.bridge, current)
            self.set_targets(targets.load(self.bridge), "")

        self.bridge.spawn(delete(), "Delete target")

    def open_credentials(self) -> None:
        entry = self.credentials.text().strip()
        dialog = CredentialsDialog(
            entry if entry != credentials.ENV else "", self.current_target().kind == "s3", self
        )
        self.credentials_dialog = dialog

        def done(result: int) -> None:
            if result == QDialog.DialogCode.Accepted:
                self.credentials.setText(dialog.entry.text().strip())
            dialog.deleteLater()
            self.credentials_dialog = None

        dialog.finished.connect(done)
        dialog.open()

    # -- payload ---------------------------------------------------------------------------

    def _type_changed(self) -> None:
        s3 = TYPES[self.type.currentIndex()][1] == "s3"
        for key in ("endpoint_url", "region", "bucket", "prefix"):
            self.set_row_visible(key, s3)
        self.set_row_visible("url", not s3)
        self.set_row_visible("headers", not s3)
        self.set_row_visible("part_size", s3)
        self.KIND = "upload.s3" if s3 else "upload.http"
        self.schema = (getattr(self._infos.get(self.KIND), "schema", None)) or {}
        self._changed()
        # fit the rows now shown: the height S3's rows needed must not pad the others
        # (a dialog not yet shown gets its size when it is)
        if self.isVisible():
            QTimer.singleShot(0, self._fit_height)  # once the rows just shown are laid out

    def _fit_height(self) -> None:
        lay = self.layout()
        if lay is not None:
            lay.invalidate()
            lay.activate()
            self.resize(self.width(), lay.totalHeightForWidth(self.width()))

    def _changed(self, *args: Any) -> None:
        if not self._filling:
            super()._changed(*args)

    def load(self, payload: dict[str, Any]) -> None:
        """An upload.s3 payload if it names a bucket, else an upload.http one."""
        inputs = [str(p) for p in payload.get("inputs") or []]
        sent = {k: v for k, v in payload.items() if k != "bandwidth_limit"}  # a target's part
        saved = [t.name for t in self._targets.values() if t.payload(inputs) == sent]
        self.target.blockSignals(True)  # (one _target_chosen below, changed or not)
        self.target.setCurrentIndex(max(0, self.target.findData(saved[0] if saved else "")))
        self.target.blockSignals(False)
        self._target_chosen()  # shows a saved target; else the fields show the payload's own
        if not saved:
            kind = "s3" if "bucket" in payload else "http"
            self._show_target(Target.from_json("", {**payload, "kind": kind}))
        self.inputs.set_paths(inputs)
        self.speed.setValue(int(payload.get("bandwidth_limit") or 0) // KB)

    def payload(self) -> dict[str, Any]:
        t = self.current_target()
        if t.kind == "s3" and not t.bucket:
            self.report("bucket", "name the bucket")
        if t.kind == "http" and not t.url:
            self.report("url", "type the address to upload to")
        if not self.inputs.paths():
            self.report("inputs", "add files or folders to upload")
        if t.kind != "s3":
            parse_headers(self.headers.toPlainText(), UPLOAD_SECRET_ADVICE)  # a bad line is named
        return {**t.payload(self.inputs.paths()), **speed_limit(self.speed)}


class DownloadDialog(JobDialog):
    """Download a URL into a folder, optionally checking its SHA-256."""

    KIND = "download.http"

    def __init__(self, info: KindInfo | None, parent: QWidget | None = None) -> None:
        super().__init__(info, "New download", "downloadDialog", parent)
        self.url = QLineEdit()
        name(self.url, "downloadUrl", "Address to download")
        self.url.setPlaceholderText("https://example.com/file.zip")
        self.add_row("url", "&Address:", self.url)
        self.output = PathEdit("downloadFolder", "Folder to save into")
        self.add_row("output_dir", "&Save into:", self.output)
        self.filename = QLineEdit()
        name(self.filename, "downloadFilename", "File name")
        self.filename.setPlaceholderText("optional: the server's name otherwise")
        self.add_row("filename", "File &name:", self.filename)
        self.sha256 = QLineEdit()
        name(self.sha256, "downloadSha256", "Expected SHA-256")
        self.sha256.setPlaceholderText("optional: 64 hex digits, checked before the file is kept")
        self.add_row("sha256", "SHA-&256:", self.sha256)
        self.credentials = QLineEdit()
        name(self.credentials, "downloadCredentials", "Credentials: keyring entry name")
        self.credentials.setPlaceholderText("optional: keyring entry name or “env”")
        self.add_row("credentials", "&Credentials:", self.credentials)
        self.headers = headers_edit("downloadHeaders")
        self.add_row("headers", "&Headers:", self.headers, "never Authorization or Cookie: use credentials")
        self.speed = speed_limit_spin("downloadSpeedLimit")
        self.add_row(
            "bandwidth_limit", "Speed &limit:", self.speed, "this job only; the global limits apply too"
        )
        self.finish_layout()

    def load(self, payload: dict[str, Any]) -> None:
        self.url.setText(str(payload.get("url") or ""))
        self.output.setText(str(payload.get("output_dir") or ""))
        self.filename.setText(str(payload.get("filename") or ""))
        self.sha256.setText(str(payload.get("sha256") or ""))
        self.credentials.setText(str(payload.get("credentials") or ""))
        headers = payload.get("headers") or {}
        self.headers.setPlainText(format_headers(headers) if isinstance(headers, dict) else "")
        self.speed.setValue(int(payload.get("bandwidth_limit") or 0) // KB)

    def payload(self) -> dict[str, Any]:
        url, out = self.url.text().strip(), self.output.text()
        if not url:
            self.report("url", "type the address to download")
        elif not re.match(r"(?i)^https?://[^/\s]+", url):
            self.report("url", "must start with http:// or https://")
        if not out:
            self.report("output_dir", "choose the folder to save into")
        elif not os.path.isabs(os.path.expanduser(out)):
            self.report("output_dir", "must be a full path (starting with /)")
        p: dict[str, Any] = {"url": url, "output_dir": os.path.expanduser(out)}
        sha = self.sha256.text().strip()
        if sha:
            if not _SHA256.match(sha):
                self.report("sha256", f"must be 64 hex digits (0-9, a-f); it has {len(sha)} characters")
            p["sha256"] = sha.lower()
        if self.filename.text().strip():
            p["filename"] = self.filename.text().strip()
        if self.credentials.text().strip():
            p["credentials"] = self.credentials.text().strip()
        headers = parse_headers(self.headers.toPlainText(), DOWNLOAD_SECRET_ADVICE)
        if headers:
            p["headers"] = headers
        return {**p, **speed_limit(self.speed)}
