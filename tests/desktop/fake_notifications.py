"""A fake org.freedesktop.Notifications service for the notification tests.

Run as `python -m tests.desktop.fake_notifications LOG` on a (private) session bus: it
owns the name, answers Notify, GetCapabilities and GetServerInformation, and appends one
JSON line per Notify call to LOG (signature, app name, summary, body). It prints
"ready" once it owns the name."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication
from PySide6.QtDBus import QDBusConnection, QDBusMessage, QDBusVirtualObject

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
NOTIFY_SIGNATURE = "susssasa{sv}i"

INTROSPECTION = f"""
  <interface name="{SERVICE}">
    <method name="Notify">
      <arg type="s" name="app_name" direction="in"/>
      <arg type="u" name="replaces_id" direction="in"/>
      <arg type="s" name="app_icon" direction="in"/>
      <arg type="s" name="summary" direction="in"/>
      <arg type="s" name="body" direction="in"/>
      <arg type="as" name="actions" direction="in"/>
      <arg type="a{{sv}}" name="hints" direction="in"/>
      <arg type="i" name="expire_timeout" direction="in"/>
      <arg type="u" name="id" direction="out"/>
    </method>
    <method name="GetCapabilities"><arg type="as" direction="out"/></method>
    <method name="GetServerInformation">
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
    </method>
  </interface>
"""


class FakeNotifications(QDBusVirtualObject):
    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log
        self.count = 0

    def introspect(self, path: str) -> str:
        return INTROSPECTION

    def handleMessage(self, message: QDBusMessage, connection: QDBusConnection) -> bool:
        member = message.member()
        reply: list[Any]
        if member == "Notify":
            args = message.arguments()
            self.count += 1
            entry = {
                "signature": message.signature(),
                "app_name": args[0] if args else None,
                "summary": args[3] if len(args) > 3 else None,
                "body": args[4] if len(args) > 4 else None,
            }
            with self.log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
            reply = [self.count]
        elif member == "GetCapabilities":
            reply = [["body"]]
        elif member == "GetServerInformation":
            reply = ["fake", "taskdeck-tests", "1", "1.2"]
        else:
            return False
        answer = message.createReply()
        answer.setArguments(reply)  # (PySide cannot send the uint32 the spec says: an int32)
        connection.send(answer)
        return True


def main() -> int:
    app = QCoreApplication(sys.argv[:1])
    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        sys.stderr.write("no session bus\n")
        return 1
    service = FakeNotifications(Path(sys.argv[1]))
    if not bus.registerVirtualObject(PATH, service):
        sys.stderr.write("could not register the object\n")
        return 1
    if not bus.registerService(SERVICE):
        sys.stderr.write(f"could not own {SERVICE}\n")
        return 1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
