"""Dialogs: opened with open() and awaited (never exec() inside an async slot)."""
