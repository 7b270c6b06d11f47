"""Running tasks: one _Run per execution, handlers on the loop, in threads or in worker
processes, and how each run ends (the decision, committed with the next claim)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import traceback as tb_module
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from core.config import (
    _ERROR,
    _INTERRUPTED,
    _OK,
    _PERMANENT,
    PROGRESS_WRITE_INTERVAL,
    SPEED_ALPHA,
    SPEED_WINDOW,
)
from core.context import SyncTaskContext, TaskContext
from core.errors import (
    Interrupted,
    InvalidState,
    Permanent,
)
from core.registry import KindSpec
from core.scheduler import EngineBase, _Run
from core.store import queries as q
from core.store.tasks import NewTask, SubmitEffects, dumps, options_of
from core.types import (
    DEFAULT_RETRY,
    JSON,
    ChildOutcome,
    Event,
    EventKind,
    PauseReason,
    RetryPolicy,
    TaskState,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class _Decision:
    state: str
    event: EventKind
    mask: int = 0
    data: dict[str, Any] | None = None
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    run_at: float | None = None
    attempt: int = 1
    keep_checkpoint: bool = False
    progress: float | None = None
    cleanup: str | None = None  # reason to run the kind's cleanup hook
    phase: str | None = None  # a new phase ("finalize" once a parent waits); None keeps it


def _format_error(exc: BaseException) -> tuple[str, str]:
    message = str(exc) or type(exc).__name__
    remote = hasattr(exc, "remote_traceback")
    if not isinstance(exc, Permanent) and not remote and type(exc).__name__ not in message:
        message = f"{type(exc).__name__}: {message}"
    summary = getattr(exc, "remote_traceback", None) or "".join(
        tb_module.format_exception(type(exc), exc, exc.__traceback__, limit=8)
    )
    return message, summary[-4000:]


# Interruptions that end a task (the others, pause, preempt and stop, leave it resumable).
_ENDING = frozenset({"cancel", "supersede", "timeout", "child_failed"})


class TaskRunner(EngineBase):
    """Starts claimed tasks, runs their handlers and records how they end."""

    def _claimed(self, run: _Run, row: tuple[Any, ...] | None, err: BaseException | None) -> None:
        t = run.task
        if row is None:
            # The row was not pending after all (changed by another process): re-read it.
            if err is not None:
                logger.error("could not start task %s: %s", t.id, err)
            self._release_slot(run)
            run.finished = True
            t.run = None
            self._refresh([t.id])
            self._request_tick()
            return
        payload, checkpoint, options, attempt, max_retries, schedule_id, _crashes = row
        t.started = True
        t.attempt = attempt
        run.payload = None if payload == "null" else json.loads(payload)
        if checkpoint is not None:
            run.checkpoint_text = checkpoint
            run.checkpoint = json.loads(checkpoint)
        run.schedule_id = schedule_id
        spec = self._kinds.get(t.kind)
        run.spec = spec
        if options:
            opts = options_of(options)
            run.policy = (
                RetryPolicy.from_json(opts["retry"])
                if "retry" in opts
                else spec.info.retry
                if spec
                else RetryPolicy(max_retries=max_retries or 0)
            )
            run.timeout = opts.get("timeout", spec.info.timeout if spec else None)
        elif spec is not None:
            run.policy = spec.info.retry
            run.timeout = spec.info.timeout
        if run.timeout is not None:
            run.timeout_timer = self._timers.call_at(
                run.started_at + run.timeout, lambda: self._on_timeout(run)
            )
        if self._closed or (not self._dispatching and run.interrupt is None):
            run.interrupt = "stop"
        if self._tg is None or self._closed:  # nothing left to run it: it stays pending
            self._commit_decision(run, self._decide(run, _INTERRUPTED, None))
            return
        try:
            run.atask = self._tg.create_task(self._execute(run), name=f"task {t.id} {t.kind}")
        except RuntimeError:  # the engine's task group is being torn down (its loop ends)
            run.interrupt = "stop"
            self._commit_decision(run, self._decide(run, _INTERRUPTED, None))

    async def _execute(self, run: _Run) -> None:
        t = run.task
        spec = run.spec
        outcome, value = _OK, None
        try:
            if spec is None:
                raise Permanent(f"unknown kind {t.kind!r}: no handler is registered in this engine")
            if run.interrupt is not None:
                raise Interrupted(run.interrupt)
            run_in = spec.info.run_in
            if t.phase == "finalize":
                value = await self._finalize(run, spec)
            elif run_in == "loop":
                value = await spec.handler(run.ctx, run.payload)
            elif run_in == "thread":
                value = await self._run_in_thread(run, spec)
            else:
                value = await self._run_in_process(run, spec)
        except asyncio.CancelledError:
            if run.interrupt is None:
                run.interrupt = "stop"  # cancelled from outside: the engine is going away
            outcome = _INTERRUPTED
        except Interrupted as e:
            outcome, value = (_INTERRUPTED, None) if run.interrupt else (_ERROR, e)
        except Permanent as e:
            outcome, value = _PERMANENT, e
        except Exception as e:
            outcome, value = (_INTERRUPTED, None) if run.interrupt else (_ERROR, e)
        if run.finished:
            return  # already recorded (stop gave up waiting for it)
        decision = self._decide(run, outcome, value)
        if decision.cleanup and spec is not None and spec.cleanup is not None:
            await self._run_cleanup(spec, run.ctx, run.payload, decision.cleanup)
        if not run.finished:
            self._commit_decision(run, decision)

    async def _finalize(self, run: _Run, spec: KindSpec) -> Any:
        """The second phase of a parent: its children ended; finalize decides its result."""
        t = run.task
        rows = await self._db.read_async(lambda c: q.child_outcomes(c, t.id))
        children = [ChildOutcome(id=i, state=TaskState(s), result=r, error=e) for i, s, r, e in rows]
        if spec.finalize is not None:
            return await spec.finalize(run.ctx, run.payload, children)
        # No finalize: complete with the handler's result, unless a child did not complete
        # (fail_fast=False parents; with fail_fast the first failure already ended it).
        failed = [c for c in children if c.state != TaskState.COMPLETED]
        if failed:
            raise Permanent(f"{len(failed)} of {len(children)} children failed")
        return await self._db.read_async(lambda c: q.stored_result(c, t.id))

    async def _run_cleanup(self, spec: KindSpec, ctx: TaskContext, payload: JSON, reason: str) -> None:
        assert spec.cleanup is not None
        try:
            await self._clock_timeout(self.config.cleanup_timeout, spec.cleanup(ctx, payload, reason))
        except TimeoutError:
            logger.warning("cleanup of task %s timed out after %ss", ctx.id, self.config.cleanup_timeout)
        except Exception:
            logger.exception("cleanup of task %s failed", ctx.id)

    async def _clock_timeout(self, seconds: float, aw: Awaitable[T]) -> T:
        """Await `aw`, cancelling it once `seconds` pass on the engine's clock."""
        task = asyncio.ensure_future(aw)
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            if not task.done():
                timed_out = True
                task.cancel()

        handle = self._timers.call_at(self._now() + seconds, expire)
        try:
            return await task
        except asyncio.CancelledError:
            if timed_out:
                raise TimeoutError(f"timed out after {seconds:g} s") from None
            raise
        finally:
            handle.cancel()

    async def _run_in_thread(self, run: _Run, spec: KindSpec) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="taskdeck-task")
        loop = asyncio.get_running_loop()
        sync_ctx = SyncTaskContext(run.ctx, loop)
        fut = loop.run_in_executor(self._threads, spec.handler, sync_ctx, run.payload)
        # A thread cannot be killed: keep waiting (the slot stays held) even if cancelled.
        while True:
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                if run.interrupt is None or (run.interrupt == "stop" and self._closed):
                    raise
                if fut.done():
                    return fut.result()
                run.interrupt = run.interrupt  # cooperative: the handler sees ctx.interrupted

    async def _run_in_process(self, run: _Run, spec: KindSpec) -> Any:
        if self._procs is None:
            from core.procpool import ProcessPool

            self._procs = ProcessPool(
                self.config.process_workers or os.cpu_count() or 2, self.config.process_start_method
            )
        return await self._procs.run(run, spec.handler)

    def _interrupt(self, run: _Run, reason: str, grace: float | None = None) -> None:
        """Ask a running task to stop (it sees ctx.interrupted); cancel it after a grace."""
        if run.finished:
            return
        # A stronger reason replaces a weaker one (a pause becomes a cancel), never the
        # reverse; stopping the engine keeps whatever reason a task already had.
        if run.interrupt is None or (reason in _ENDING and run.interrupt not in _ENDING):
            run.interrupt = reason
        if self._procs is not None and run.worker is not None:
            self._procs.interrupt(run)
        if run.waiting is not None and not run.waiting.done():
            run.waiting.set_result(None)  # waiting for bandwidth: see the interruption now
        grace = self.config.preempt_grace if grace is None else grace
        if grace <= 0:
            self._hard_stop(run)
        elif run.grace_timer is None:
            run.grace_timer = self._timers.call_at(self._now() + grace, lambda: self._hard_stop(run))

    def _hard_stop(self, run: _Run) -> None:
        if run.finished or run.atask is None:
            return
        if run.worker is not None and self._procs is not None:
            self._procs.kill(run)
        run.atask.cancel()

    def _on_timeout(self, run: _Run) -> None:
        run.timeout_timer = None
        if not run.finished:
            run.interrupt = "timeout"
            self._interrupt(run, "timeout", grace=0.0)

    def _decide(self, run: _Run, outcome: int, value: Any) -> _Decision:
        t = run.task
        policy = run.policy
        attempt = t.attempt
        if run.interrupt == "child_failed":  # fail-fast: a child failed while this one ran
            error = self._fail_reasons.pop(t.id, "a child task failed")
            return _Decision(
                TaskState.FAILED,
                EventKind.FAILED,
                error=error,
                attempt=attempt,
                data={"error": error},
                cleanup="failed",
            )
        if outcome == _OK:
            try:
                result_json = None if value is None else dumps(value)
            except (TypeError, ValueError) as e:
                outcome, value = _PERMANENT, Permanent(f"the handler's result is not JSON-serialisable: {e}")
            else:
                spec = run.spec
                if t.phase is None and (t.spawned or (spec is not None and spec.finalize is not None)):
                    # A parent: it ends when its children do (then finalize runs, if any).
                    return _Decision(
                        TaskState.WAITING,
                        EventKind.WAITING,
                        result_json=result_json,
                        attempt=attempt,
                        data={"children": t.children},
                        phase="finalize",
                    )
                return _Decision(
                    TaskState.COMPLETED,
                    EventKind.COMPLETED,
                    result_json=result_json,
                    attempt=attempt,
                    progress=1.0,
                )
        if outcome == _INTERRUPTED:
            reason = run.interrupt or "stop"
            if reason == "timeout":
                outcome, value = _ERROR, TimeoutError(f"timed out after {run.timeout:g} s")
            elif reason == "cancel":
                return _Decision(
                    TaskState.CANCELLED,
                    EventKind.CANCELLED,
                    attempt=attempt,
                    error="cancelled while running",
                    cleanup="cancelled",
                )
            elif reason == "supersede":
                return _Decision(
                    TaskState.SUPERSEDED,
                    EventKind.SUPERSEDED,
                    attempt=attempt,
                    error="superseded by a newer submission",
                    cleanup="superseded",
                )
            elif reason == "stop":
                return _Decision(
                    TaskState.PAUSED if t.reasons else TaskState.PENDING,
                    EventKind.INTERRUPTED,
                    mask=t.reasons,
                    attempt=attempt,
                    keep_checkpoint=True,
                    run_at=None,
                )
            else:  # pause or preempt
                if reason == "preempt" and t.reasons == PauseReason.PREEMPTED:
                    return _Decision(
                        TaskState.PAUSED,
                        EventKind.PREEMPTED,
                        mask=t.reasons,
                        attempt=attempt,
                        keep_checkpoint=True,
                        data={"by": self._preempted_by.get(t.id)},
                    )
                if t.reasons:
                    return _Decision(
                        TaskState.PAUSED,
                        EventKind.PAUSED,
                        mask=t.reasons,
                        attempt=attempt,
                        keep_checkpoint=True,
                        data={"reasons": list(PauseReason(t.reasons).names)},
                    )
                return _Decision(TaskState.PENDING, EventKind.RESUMED, attempt=attempt, keep_checkpoint=True)
        message, summary = _format_error(
            value if isinstance(value, BaseException) else RuntimeError(str(value))
        )
        if outcome == _ERROR and attempt <= policy.max_retries:
            delay = policy.delay_for(attempt, self._rng)
            run_at = self._now() + delay
            return _Decision(
                TaskState.PAUSED if t.reasons else TaskState.PENDING,
                EventKind.RETRYING,
                mask=t.reasons,
                error=message,
                traceback=summary,
                run_at=run_at,
                attempt=attempt + 1,
                keep_checkpoint=True,
                data={
                    "error": message,
                    "attempt": attempt + 1,
                    "of": policy.max_retries + 1,
                    "at": run_at,
                    "delay": round(delay, 3),
                },
            )
        return _Decision(
            TaskState.FAILED,
            EventKind.FAILED,
            error=message,
            traceback=summary,
            attempt=attempt,
            data={"error": message},
            cleanup="failed",
        )

    def _commit_decision(self, run: _Run, d: _Decision) -> None:
        t = run.task
        run.finished = True
        for h in (run.grace_timer, run.timeout_timer):
            if h is not None:
                h.cancel()
        now = self._now()
        elapsed = max(0.0, now - run.started_at)
        self._release_slot(run)
        t.run = None
        t.state = d.state
        t.attempt = d.attempt
        t.run_at = d.run_at
        t.reasons = d.mask
        terminal = TaskState(d.state).is_terminal
        db = self._db
        if run.dirty:
            self._flush_progress_rows([run])
        io = tuple(run.io)
        checkpoint = run.checkpoint_text if d.keep_checkpoint else None
        info = self._kinds.get(t.kind)

        def op(conn: Any) -> SubmitEffects | None:
            ok, requeue = db.tr.end_run(
                conn,
                t.id,
                now,
                state=d.state,
                event=d.event,
                event_data=d.data,
                mask=d.mask,
                result_json=d.result_json,
                error=d.error,
                traceback=d.traceback,
                run_at=d.run_at,
                attempt=d.attempt,
                checkpoint_json=checkpoint,
                progress=d.progress,
                run_seconds=elapsed,
                io=io,
                phase=d.phase,
            )
            if ok and d.event == EventKind.RETRYING:  # the next attempt starts its progress afresh
                db.tr.clear_progress(conn, t.id)
            if not (ok and requeue and terminal and d.state != TaskState.CANCELLED):
                return None
            again = json.loads(requeue)
            row = conn.execute(
                "SELECT grp, label, dedup_key, options, tags FROM tasks WHERE id = ?", (t.id,)
            ).fetchone()
            grp, label, key, options, tags = row
            opts = json.loads(options) if options else {}
            new = NewTask(
                kind=t.kind,
                payload_json=dumps(again["payload"]),
                priority=again["priority"],
                group=grp,
                label=label,
                key=key,
                on_duplicate="skip",
                parent_id=t.parent_id,
                schedule_id=run.schedule_id,
                retry_of=None,
                max_retries=(info.info.retry.max_retries if info else DEFAULT_RETRY.max_retries),
                options_json=options,
                tags=json.loads(tags) if tags else None,
                created_at=now,
                run_at=None,
                expires_at=now + opts["ttl"] if "ttl" in opts else None,
            )
            return db.sql.submit(conn, [new], self._pause_mask)

        def after(fx: SubmitEffects | None, err: BaseException | None) -> None:
            if err is not None:
                logger.error("could not record the end of task %s: %s", t.id, err)
            if fx is not None:
                self._apply_submit_effects(fx)
            if terminal:
                self._after_terminal(t.id)
            elif t.state == TaskState.WAITING and t.children == 0 and self._tasks.get(t.id) is t:
                self._resolve_parent(t)  # its children ended before it did

        if d.phase is not None:
            t.phase = d.phase
        db.writer.enqueue(op, after)
        if terminal:
            self._forget(t)
            self._task_ended(t, d.state, d.error)
        elif d.state in (TaskState.PENDING, TaskState.PAUSED):
            self._settle(t)
        self._request_tick()

    def _report_progress(
        self, run: _Run, fraction: float | None, message: str | None, done: int | None, total: int | None
    ) -> None:
        if run.finished:
            return
        now = self._now()
        if total is not None:
            run.total = total
        if done is not None:
            run.done = done
            if run.total:
                fraction = min(1.0, done / run.total) if fraction is None else fraction
        if fraction is not None:
            run.progress = fraction
        if message is not None:
            run.message = message[:500]
        self._update_speed(run, now)
        run.dirty = True
        self._bus.publish_progress(
            Event(
                seq=None,
                at=self._clock.now(),
                kind=EventKind.PROGRESS,
                task_id=run.task.id,
                data={
                    "progress": run.progress,
                    "message": run.message,
                    "done": run.done,
                    "total": run.total,
                    "speed": run.speed,
                    "eta": run.eta,
                },
            )
        )
        self._schedule_progress_write()

    def _update_speed(self, run: _Run, now: float) -> None:
        if run.rate_t is None:
            run.rate_t, run.rate_done, run.rate_frac = now, run.done or 0, run.progress or 0.0
            return
        dt = now - run.rate_t
        if dt < SPEED_WINDOW:
            return
        if run.done is not None:
            sample = max(0.0, (run.done - run.rate_done) / dt)
            run.speed = sample if run.speed is None else SPEED_ALPHA * sample + (1 - SPEED_ALPHA) * run.speed
            if run.total is not None and run.speed > 0:
                run.eta = max(0.0, (run.total - run.done) / run.speed)
        elif run.progress is not None:
            rate = max(0.0, (run.progress - run.rate_frac) / dt)
            if rate > 0:
                eta = (1.0 - run.progress) / rate
                run.eta = eta if run.eta is None else SPEED_ALPHA * eta + (1 - SPEED_ALPHA) * run.eta
        run.rate_t, run.rate_done, run.rate_frac = now, run.done or 0, run.progress or 0.0

    def _schedule_progress_write(self) -> None:
        if self._progress_timer is not None or self._loop is None:
            return
        self._progress_timer = self._loop.call_later(PROGRESS_WRITE_INTERVAL, self._progress_due)

    def _progress_due(self) -> None:
        self._progress_timer = None
        self._flush_buffers(force=True)
        self._db.writer.flush()

    def _flush_progress_rows(self, runs: Iterable[_Run]) -> None:
        rows = []
        for r in runs:
            if r.dirty:
                r.dirty = False
                rows.append((r.progress, r.message, r.done, r.total, r.speed, r.eta, r.task.id))
        if rows:
            self._db.writer.enqueue(lambda conn: self._db.tr.write_progress(conn, rows))

    def _flush_buffers(self, force: bool = False) -> None:
        if self._log_buffer:
            rows, self._log_buffer = self._log_buffer, []
            self._db.writer.enqueue(lambda conn: self._db.tr.write_logs(conn, rows))
        loop_time = self._loop.time() if self._loop else 0.0
        if force or loop_time - self._progress_written_at >= PROGRESS_WRITE_INTERVAL:
            dirty = [r for r in self._running.values() if r.dirty]
            if dirty:
                self._progress_written_at = loop_time
                self._flush_progress_rows(dirty)

    def _append_log(self, task_id: int, level: str, message: str) -> None:
        self._log_buffer.append((task_id, self._now(), level, message))
        self._request_tick()

    async def _save_checkpoint(self, run: _Run, data: JSON, text: str) -> None:
        if run.finished:
            raise InvalidState(f"task {run.task.id} is no longer running")
        db = self._db
        task_id = run.task.id
        await db.writer.run(lambda conn: db.tr.save_checkpoint(conn, task_id, text))
        run.checkpoint = data
        run.checkpoint_text = text
