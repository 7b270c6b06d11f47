"""Crash tests: a worker subprocess that the tests kill with SIGKILL at chosen instants."""
