"""TaskContext: what a handler sees of the engine while it runs."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import Interrupted, InvalidArgument, InvalidState, Permanent, TaskNotFound
from core.store import queries as q
from core.types import JSON, RetryPolicy, Submission, SubmitResult

T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:
    from core.scheduler import _Run

LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_LOG_MESSAGE = 8192
MAX_CHECKPOINT_BYTES = 1 << 20

# Anything that looks like a credential is masked before a log line is stored.
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token|digest)\s+)?[^\s\"',;&]+"
)
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key"
            r"|session[_-]?token|aws_secret_access_key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "***"),
    (re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1***:***@"),
)


def redact(message: str) -> str:
    """Mask passwords, tokens, keys and URL credentials in a log line."""
    message = _AUTH_HEADER.sub(
        lambda m: m.group(1) + (f"{m.group(2)} " if m.group(2) else "") + "***", message
    )
    for pattern, replacement in _REDACTIONS:
        message = pattern.sub(replacement, message)
    return message


class TaskContext:
    """Passed to every handler. Async methods for loop handlers; see SyncTaskContext."""

    __slots__ = ("_run",)

    def __init__(self, run: _Run) -> None:
        self._run = run

    # -- identity -----------------------------------------------------------------------

    @property
    def id(self) -> int:
        return self._run.task.id

    @property
    def kind(self) -> str:
        return self._run.task.kind

    @property
    def payload(self) -> JSON:
        return self._run.payload

    @property
    def attempt(self) -> int:
        """1-based; counts executions that ended in a retryable failure, plus one."""
        return self._run.task.attempt

    @property
    def max_retries(self) -> int:
        return self._run.policy.max_retries

    @property
    def priority(self) -> int:
        return self._run.task.priority

    @property
    def parent_id(self) -> int | None:
        return self._run.task.parent_id

    @property
    def schedule_id(self) -> int | None:
        return self._run.schedule_id

    @property
    def resume_data(self) -> JSON:
        """The last checkpoint, after a pause, preemption, stop or crash; else None."""
        return self._run.checkpoint

    # -- reporting ----------------------------------------------------------------------

    def progress(
        self,
        fraction: float | None = None,
        message: str | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        """Report progress: a fraction in 0..1, and/or bytes or items `done` of `total`."""
        if fraction is not None:
            if not isinstance(fraction, int | float) or math.isnan(fraction):
                raise InvalidArgument(f"fraction: must be a number in 0..1, got {fraction!r}")
            fraction = min(1.0, max(0.0, float(fraction)))
        for name, value in (("done", done), ("total", total)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidArgument(f"{name}: must be an int >= 0, got {value!r}")
        self._run.engine._report_progress(self._run, fraction, message, done, total)

    def record_io(self, read: int = 0, written: int = 0, sent: int = 0, received: int = 0) -> None:
        """Add bytes this task actually moved (disk read/written, network sent/received)."""
        io = self._run.io
        io[0] += read
        io[1] += written
        io[2] += sent
        io[3] += received

    async def throttle(self, nbytes: int) -> None:
        """Draw `nbytes` from the bandwidth budget before moving them over the network:
        returns at once when no limit applies, else when the global limit (and this
        task's payload `bandwidth_limit`, in bytes/s) allow it. Raises Interrupted if the
        task is being stopped meanwhile."""
        await self._run.engine._throttle(self._run, nbytes)

    def log(self, message: str, level: str = "info") -> None:
        """Append a line to this task's log (kept with the task; credentials are masked)."""
        if level not in LOG_LEVELS:
            raise InvalidArgument(f"level: must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        text = redact(str(message))
        if len(text) > MAX_LOG_MESSAGE:
            text = text[:MAX_LOG_MESSAGE] + " …[truncated]"
        self._run.engine._append_log(self._run.task.id, level, text)

    async def checkpoint(self, data: JSON) -> None:
        """Persist resume data; returns once it is committed."""
        text = _checkpoint_json(data)
        await self._run.engine._save_checkpoint(self._run, data, text)

    # -- interruption -------------------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        """True once the task is being paused, preempted, cancelled or stopped."""
        return self._run.interrupt is not None

    async def yield_point(self) -> None:
        """Let other tasks run; raises Interrupted if this task is being stopped."""
        if self._run.interrupt is not None:
            raise Interrupted(self._run.interrupt)
        await asyncio.sleep(0)

    # -- trees and graphs ---------------------------------------------------------------

    async def spawn_child(self, kind: str, payload: JSON = None, **options: Any) -> SubmitResult:
        """Submit a child of this task (it inherits this task's priority and group unless
        given its own). When this handler returns while children are live, the task waits
        for them; then the kind's finalize runs."""
        return (await self.spawn_children([Submission(kind, payload, **options)]))[0]

    async def spawn_children(self, children: Iterable[Submission]) -> list[SubmitResult]:
        """Submit many children in one transaction."""
        return await self._run.engine._spawn(self._run, list(children), self._run.task.id)

    async def spawn_sibling(self, kind: str, payload: JSON = None, **options: Any) -> SubmitResult:
        """Submit a task with this task's parent. Raises InvalidState for a root task."""
        parent = self._run.task.parent_id
        if parent is None:
            raise InvalidState(f"task {self.id} has no parent, so it can have no siblings")
        sub = Submission(kind, payload, **options)
        return (await self._run.engine._spawn(self._run, [sub], parent))[0]

    async def result_of(self, task_id: int) -> JSON:
        """The result of a completed task (a dependency, say). Raises TaskNotFound, or
        InvalidState if it has not completed."""
        row = self._run.engine._db.read(lambda c: q.state_and_result(c, task_id))
        if row is None:
            raise TaskNotFound(task_id)
        if row[0] != "completed":
            raise InvalidState(f"task {task_id} is {row[0]}, not completed: it has no result")
        return row[1]

    async def dependency_results(self) -> dict[int, JSON]:
        """The results of this task's dependencies, by task id (one that did not complete,
        allowed by on_dependency_failure="ignore", maps to None)."""
        rows = self._run.engine._db.read(lambda c: q.dependency_results(c, self.id))
        return {dep: result if state == "completed" else None for dep, state, result in rows}

    async def map(
        self,
        items: Iterable[T],
        fn: Callable[[T], Awaitable[R]],
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
    ) -> list[R | BaseException]:
        """Run `fn` over `items`, at most `concurrency` at a time, inside this task.

        Results come back in input order; a failed item's exception stands in its slot
        (retried first under `retry`, on the engine's clock). Progress reports items done
        of total. A pause, preemption or cancel stops launching items and raises
        Interrupted."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgument(f"concurrency: must be an int >= 1, got {concurrency!r}")
        todo = list(items)
        total = len(todo)
        results: list[Any] = [None] * total
        policy = retry or RetryPolicy.none()
        limit = asyncio.Semaphore(concurrency)
        done = 0
        engine = self._run.engine

        async def one(i: int, item: T) -> None:
            nonlocal done
            async with limit:
                attempt = 1
                while True:
                    await self.yield_point()
                    try:
                        results[i] = await fn(item)
                        break
                    except (Interrupted, asyncio.CancelledError):
                        raise
                    except Exception as e:
                        if isinstance(e, Permanent) or attempt > policy.max_retries:
                            results[i] = e
                            break
                        await engine._sleep(policy.delay_for(attempt))
                        attempt += 1
                done += 1
                self.progress(fraction=done / total, message=f"{done} of {total}")

        try:
            async with asyncio.TaskGroup() as tg:
                for i, item in enumerate(todo):
                    tg.create_task(one(i, item))
        except BaseExceptionGroup as group:
            interrupted = group.subgroup(Interrupted)
            if interrupted is not None:
                raise Interrupted(self._run.interrupt or "interrupted") from None
            raise
        return results


def _checkpoint_json(data: JSON) -> str:
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"checkpoint: not JSON-serialisable: {e}") from e
    if len(text.encode()) > MAX_CHECKPOINT_BYTES:
        raise InvalidArgument(f"checkpoint: {len(text.encode())} bytes, more than 1 MiB")
    return text


class SyncTaskContext:
    """The same surface for handlers that run in a thread: plain methods, no awaits."""

    def __init__(self, ctx: TaskContext, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        # identity properties read plain attributes: safe from any thread
        if name in (
            "id",
            "kind",
            "payload",
            "attempt",
            "max_retries",
            "priority",
            "parent_id",
            "schedule_id",
            "resume_data",
            "interrupted",
        ):
            return getattr(self._ctx, name)
        raise AttributeError(name)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def progress(
        self,
        fraction: float | None = None,
        message: str | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        self._call(self._ctx.progress, fraction, message, done, total)

    def record_io(self, read: int = 0, written: int = 0, sent: int = 0, received: int = 0) -> None:
        self._call(self._ctx.record_io, read, written, sent, received)

    def log(self, message: str, level: str = "info") -> None:
        if level not in LOG_LEVELS:
            raise InvalidArgument(f"level: must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        self._call(self._ctx.log, message, level)

    def checkpoint(self, data: JSON) -> None:
        _checkpoint_json(data)  # raise in the caller's thread
        asyncio.run_coroutine_threadsafe(self._ctx.checkpoint(data), self._loop).result()

    def yield_point(self) -> None:
        run = self._ctx._run
        if run.interrupt is not None:
            raise Interrupted(run.interrupt)

    def throttle(self, nbytes: int) -> None:
        """Block until `nbytes` may be moved under the bandwidth limits (see TaskContext)."""
        asyncio.run_coroutine_threadsafe(self._ctx.throttle(nbytes), self._loop).result()

    def spawn_child(self, kind: str, payload: JSON = None, **options: Any) -> SubmitResult:
        return asyncio.run_coroutine_threadsafe(
            self._ctx.spawn_child(kind, payload, **options), self._loop
        ).result()

    def spawn_children(self, children: Iterable[Submission]) -> list[SubmitResult]:
        return asyncio.run_coroutine_threadsafe(self._ctx.spawn_children(list(children)), self._loop).result()

    def spawn_sibling(self, kind: str, payload: JSON = None, **options: Any) -> SubmitResult:
        return asyncio.run_coroutine_threadsafe(
            self._ctx.spawn_sibling(kind, payload, **options), self._loop
        ).result()

    def result_of(self, task_id: int) -> JSON:
        return asyncio.run_coroutine_threadsafe(self._ctx.result_of(task_id), self._loop).result()
