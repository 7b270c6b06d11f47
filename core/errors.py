"""The exception tree: everything core raises on purpose derives from TaskdeckError."""

from __future__ import annotations


class TaskdeckError(Exception):
    """Base of every error core raises on purpose."""


class InvalidSubmission(TaskdeckError, ValueError):
    """A submission (or option of one) is malformed; nothing was written."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownKind(TaskdeckError, LookupError):
    """No handler is registered for a kind."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown kind {kind!r}: no handler is registered for it")
        self.kind = kind


class TaskNotFound(TaskdeckError, LookupError):
    """No task (active or in history) has this id."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} does not exist")
        self.task_id = task_id


class InvalidState(TaskdeckError, RuntimeError):
    """The operation does not apply to the task in its current state."""


class InvalidArgument(TaskdeckError, ValueError):
    """An argument of a control or query call is malformed."""


class InvalidSchedule(TaskdeckError, ValueError):
    """A schedule (or one of its options) is malformed; nothing was written."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ScheduleNotFound(TaskdeckError, LookupError):
    """No schedule has this id."""

    def __init__(self, schedule_id: int) -> None:
        super().__init__(f"schedule {schedule_id} does not exist")
        self.schedule_id = schedule_id


class InvalidDependency(TaskdeckError, ValueError):
    """A dependency names a missing task or forms a cycle."""


class DependencyFailed(TaskdeckError, RuntimeError):
    """A dependency already failed and the policy is to cancel."""


class EngineLocked(TaskdeckError, RuntimeError):
    """Another engine (in this or another process) holds the database."""

    def __init__(self, path: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{path} is in use by {holder}; open it with Client.open instead")
        self.path = path
        self.pid = pid


class EngineClosed(TaskdeckError, RuntimeError):
    """The engine or client was stopped or closed."""


class SchemaTooNew(TaskdeckError, RuntimeError):
    """The database was written by a newer Taskdeck; it is left untouched."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"{path} has schema version {found}, newer than this Taskdeck supports "
            f"({supported}); upgrade Taskdeck to open it (the file was not changed)"
        )
        self.path = path
        self.found = found
        self.supported = supported


class CorruptDatabase(TaskdeckError, RuntimeError):
    """The file is not a usable Taskdeck database."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} is not a usable Taskdeck database: {problem}")
        self.path = path


class WaitTimeout(TaskdeckError, TimeoutError):
    """`wait` gave up before the task reached a terminal state."""

    def __init__(self, task_id: int, timeout: float) -> None:
        super().__init__(f"task {task_id} did not finish within {timeout:g} s")
        self.task_id = task_id


class Permanent(TaskdeckError):
    """Raised by a handler for a failure that retrying cannot fix."""


class Interrupted(TaskdeckError):
    """Raised at a yield point when the task is being paused, preempted or cancelled."""

    def __init__(self, reason: str = "interrupted") -> None:
        super().__init__(reason)
        self.reason = reason


class JoinFailed(Permanent):
    """Too few of a parent's children completed for a join (raised in finalize; retrying
    cannot change how the children ended, so it is permanent)."""

    def __init__(self, need: str, total: int, failures: list[tuple[int, str, str | None]]) -> None:
        done = total - len(failures)
        shown = "; ".join(f"#{i} {state}" + (f": {err}" if err else "") for i, state, err in failures[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        super().__init__(f"join needs {need} of {total} children, {done} completed ({shown}{more})")
        self.failures = failures
