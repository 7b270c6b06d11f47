"""Widgets of the main window. They show models and call the bridge; no business logic."""
