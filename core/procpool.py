"""Worker processes for handlers registered with run_in="process".

Processes are started with spawn (or forkserver), never fork: a Qt process must not be
forked. Each worker runs one task at a time and talks to the engine over a pipe: progress,
IO, log lines and checkpoints go up (a checkpoint waits for the engine's commit), an
interrupt request comes down. A worker that dies fails only its own task and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from core.errors import Interrupted, Permanent

if TYPE_CHECKING:
    from core.scheduler import _Run

logger = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """The process running a task exited before the task ended."""


class RemoteError(Exception):
    """An exception raised by a handler in a worker process (its traceback is kept)."""

    def __init__(self, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


class _Worker:
    def __init__(self, pool: ProcessPool) -> None:
        self.pool = pool
        ours, theirs = multiprocessing.Pipe(duplex=True)
        self.conn: Connection = ours
        self._child_conn = theirs
        self.process = pool.mp.Process(  # type: ignore[attr-defined]
            target=worker_main, args=(theirs,), daemon=True, name="taskdeck-worker"
        )
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] | None = None
        self.run: _Run | None = None
        self.dead = False
        self._send_lock = threading.Lock()

    def start(self) -> None:
        """Blocking: start the process and the thread that reads its messages."""
        self.process.start()
        self._child_conn.close()
        threading.Thread(target=self._read, daemon=True, name="taskdeck-worker-reader").start()

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            except Exception as e:  # an unpicklable message: fail the task, keep reading
                msg = ("error", "error", f"could not receive a message from the worker: {e}", "")
            try:
                self.loop.call_soon_threadsafe(self._on_message, msg)
            except RuntimeError:
                return  # the loop is closed
        self.process.join(timeout=5)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._on_exit, self.process.exitcode)

    def send(self, msg: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(msg)

    async def execute(self, run: _Run, handler: Callable[..., Any]) -> Any:
        self.run = run
        self.future = self.loop.create_future()
        t = run.task
        state = {
            "id": t.id,
            "kind": t.kind,
            "payload": run.payload,
            "attempt": t.attempt,
            "max_retries": run.policy.max_retries,
            "priority": t.priority,
            "parent_id": t.parent_id,
            "schedule_id": run.schedule_id,
            "resume_data": run.checkpoint,
        }
        try:
            self.send(("run", handler, state))
        except Exception as e:
            raise Permanent(f"could not send the task to a worker process: {e}") from e
        if run.interrupt is not None:
            self.send(("interrupt", run.interrupt))
        try:
            return await self.future
        finally:
            self.run = None
            self.future = None

    def _on_message(self, msg: tuple[Any, ...]) -> None:
        run, fut = self.run, self.future
        if run is None or fut is None or fut.done():
            return
        tag = msg[0]
        ctx = run.ctx
        try:
            if tag == "progress":
                ctx.progress(*msg[1:])
            elif tag == "io":
                ctx.record_io(*msg[1:])
            elif tag == "log":
                ctx.log(msg[1], msg[2])
            elif tag == "checkpoint":
                self.pool.spawn_checkpoint(self, run, msg[1])
            elif tag == "spawn":
                self.pool.spawn_children(self, run, msg[1], msg[2])
            elif tag == "throttle":
                self.pool.spawn_throttle(self, run, msg[1])
            elif tag == "done":
                fut.set_result(msg[1])
            elif tag == "interrupted":
                fut.set_exception(Interrupted(msg[1] or "interrupted"))
            elif tag == "error":
                _, kind, message, tb = msg
                fut.set_exception(Permanent(message) if kind == "permanent" else RemoteError(message, tb))
        except Exception as e:
            logger.warning("bad message from worker for task %s: %s", run.task.id, e)

    def _on_exit(self, code: int | None) -> None:
        self.dead = True
        self.pool.discard(self)
        if self.future is not None and not self.future.done():
            self.future.set_exception(WorkerDied(f"the worker process died (exit code {code})"))

    def kill(self) -> None:
        self.dead = True
        with contextlib.suppress(Exception):
            self.process.kill()


class ProcessPool:
    def __init__(self, size: int, method: str = "spawn") -> None:
        self.size = max(1, size)
        self.mp = multiprocessing.get_context(method)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._available = asyncio.Semaphore(self.size)
        self._background: set[asyncio.Task[None]] = set()

    async def run(self, run: _Run, handler: Callable[..., Any]) -> Any:
        async with self._available:
            worker = await self._acquire()
            run.worker = worker
            try:
                return await worker.execute(run, handler)
            except asyncio.CancelledError:
                worker.kill()  # it is still running the handler: stop it the hard way
                raise
            finally:
                run.worker = None
                if worker.dead:
                    self.discard(worker)
                else:
                    self._idle.append(worker)

    async def _acquire(self) -> _Worker:
        while self._idle:
            w = self._idle.pop()
            if not w.dead and w.process.is_alive():
                return w
            self.discard(w)
        w = _Worker(self)
        self._all.add(w)
        await asyncio.to_thread(w.start)
        return w

    def discard(self, worker: _Worker) -> None:
        self._all.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if not worker.dead and worker.process.is_alive():
            worker.kill()

    def interrupt(self, run: _Run) -> None:
        w = run.worker
        if w is not None and not w.dead:
            with contextlib.suppress(Exception):
                w.send(("interrupt", run.interrupt))

    def kill(self, run: _Run) -> None:
        w = run.worker
        if w is not None:
            w.kill()

    def spawn_checkpoint(self, worker: _Worker, run: _Run, data: Any) -> None:
        async def save() -> None:
            try:
                await run.ctx.checkpoint(data)
                reply: tuple[Any, ...] = ("ack", None)
            except Exception as e:
                reply = ("ack", str(e))
            if not worker.dead:
                with contextlib.suppress(Exception):
                    worker.send(reply)

        task = asyncio.get_running_loop().create_task(save())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def spawn_throttle(self, worker: _Worker, run: _Run, nbytes: Any) -> None:
        """Wait for bandwidth on a process handler's behalf; the reply releases it."""

        async def wait() -> None:
            try:
                await run.ctx.throttle(nbytes)
                reply: tuple[Any, ...] = ("ack", None)
            except Interrupted as e:
                reply = ("ack", f"interrupted:{e.reason}")
            except Exception as e:
                reply = ("ack", f"{type(e).__name__}: {e}")
            if not worker.dead:
                with contextlib.suppress(Exception):
                    worker.send(reply)

        task = asyncio.get_running_loop().create_task(wait())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def spawn_children(self, worker: _Worker, run: _Run, subs: list[tuple[Any, ...]], sibling: bool) -> None:
        """Submit children for a process handler; the reply carries ids or an error."""

        async def spawn() -> None:
            from core.types import Submission

            try:
                made = [Submission(kind, payload, **options) for kind, payload, options in subs]
                if sibling:
                    results = [await run.ctx.spawn_sibling(s.kind, s.payload, **_options(s)) for s in made]
                else:
                    results = await run.ctx.spawn_children(made)
                reply: tuple[Any, ...] = ("ack", None, [(r.id, r.outcome.value) for r in results])
            except Exception as e:
                reply = ("ack", f"{type(e).__name__}: {e}", None)
            if not worker.dead:
                with contextlib.suppress(Exception):
                    worker.send(reply)

        task = asyncio.get_running_loop().create_task(spawn())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        workers = list(self._all)
        for w in workers:
            with contextlib.suppress(Exception):
                w.send(("exit",))
        await asyncio.to_thread(_join_all, workers)


def _options(sub: Any) -> dict[str, Any]:
    import dataclasses

    skip = ("kind", "payload")
    return {f.name: getattr(sub, f.name) for f in dataclasses.fields(sub) if f.name not in skip}


def _join_all(workers: list[_Worker]) -> None:
    for w in workers:
        if w.process.pid is None:  # it never started (spawning it failed)
            continue
        w.process.join(timeout=2)
        if w.process.is_alive():
            w.kill()
            w.process.join(timeout=2)


# -- the worker process ---------------------------------------------------------------


class ProcessTaskContext:
    """The ctx a process handler sees: the TaskContext surface, as plain calls."""

    def __init__(
        self,
        state: dict[str, Any],
        send: Callable[[tuple[Any, ...]], None],
        interrupted: threading.Event,
        reason: list[str | None],
        acks: queue.Queue[Any],
    ) -> None:
        self._state = state
        self._send = send
        self._interrupted = interrupted
        self._reason = reason
        self._acks = acks

    id = property(lambda self: self._state["id"])
    kind = property(lambda self: self._state["kind"])
    payload = property(lambda self: self._state["payload"])
    attempt = property(lambda self: self._state["attempt"])
    max_retries = property(lambda self: self._state["max_retries"])
    priority = property(lambda self: self._state["priority"])
    parent_id = property(lambda self: self._state["parent_id"])
    schedule_id = property(lambda self: self._state["schedule_id"])
    resume_data = property(lambda self: self._state["resume_data"])

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def yield_point(self) -> None:
        if self._interrupted.is_set():
            raise Interrupted(self._reason[0] or "interrupted")

    def progress(
        self,
        fraction: float | None = None,
        message: str | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        self._send(("progress", fraction, message, done, total))

    def record_io(self, read: int = 0, written: int = 0, sent: int = 0, received: int = 0) -> None:
        self._send(("io", read, written, sent, received))

    def log(self, message: str, level: str = "info") -> None:
        self._send(("log", str(message), level))

    def checkpoint(self, data: Any) -> None:
        """Persist resume data; returns once the engine has committed it."""
        self._send(("checkpoint", data))
        error = self._acks.get()
        if error:
            raise RuntimeError(f"checkpoint failed: {error}")
        self._state["resume_data"] = data

    def throttle(self, nbytes: int) -> None:
        """Block until `nbytes` may be moved under the bandwidth limits."""
        self._send(("throttle", nbytes))
        error = self._acks.get()
        if error:
            if error.startswith("interrupted:"):
                raise Interrupted(error.split(":", 1)[1] or "interrupted")
            raise RuntimeError(f"throttle failed: {error}")

    def spawn_child(self, kind: str, payload: Any = None, **options: Any) -> Any:
        return self._spawn([(kind, payload, options)], sibling=False)[0]

    def spawn_children(self, children: Any) -> list[Any]:
        return self._spawn([(c.kind, c.payload, _options(c)) for c in children], sibling=False)

    def spawn_sibling(self, kind: str, payload: Any = None, **options: Any) -> Any:
        return self._spawn([(kind, payload, options)], sibling=True)[0]

    def _spawn(self, subs: list[tuple[Any, ...]], sibling: bool) -> list[Any]:
        from core.types import SubmitOutcome, SubmitResult

        self._send(("spawn", subs, sibling))
        error, results = self._acks.get()
        if error:
            raise RuntimeError(f"spawning failed: {error}")
        return [SubmitResult(i, SubmitOutcome(o)) for i, o in results]


def worker_main(conn: Connection) -> None:  # pragma: no cover - runs in the child process
    jobs: queue.Queue[Any] = queue.Queue()
    acks: queue.Queue[Any] = queue.Queue()
    interrupted = threading.Event()
    reason: list[str | None] = [None]
    lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with lock:
            conn.send(msg)

    def read() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                jobs.put(None)
                return
            except Exception as e:  # the handler could not be unpickled, say
                jobs.put(("broken", str(e)))
                continue
            tag = msg[0]
            if tag == "interrupt":
                reason[0] = msg[1]
                interrupted.set()
            elif tag == "ack":
                acks.put(msg[1] if len(msg) == 2 else (msg[1], msg[2]))
            elif tag == "exit":
                jobs.put(None)
                return
            else:
                jobs.put(msg)

    threading.Thread(target=read, daemon=True).start()
    while True:
        job = jobs.get()
        if job is None:
            return
        if job[0] == "broken":
            send(("error", "permanent", f"could not load the task in the worker: {job[1]}", ""))
            continue
        _, handler, state = job
        interrupted.clear()
        reason[0] = None
        ctx = ProcessTaskContext(state, send, interrupted, reason, acks)
        try:
            result = handler(ctx, state["payload"])
        except Interrupted as e:
            send(("interrupted", reason[0] or e.reason))
            continue
        except Permanent as e:
            send(("error", "permanent", str(e), traceback.format_exc(limit=8)))
            continue
        except BaseException as e:
            send(("error", "error", f"{type(e).__name__}: {e}", traceback.format_exc(limit=8)))
            continue
        try:
            send(("done", result))
        except Exception as e:
            send(("error", "permanent", f"the handler's result could not be sent back: {e}", ""))
