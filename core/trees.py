"""Task trees and graphs: parents wait for their children, dependents for their
dependencies, and the end of a task moves both along.

A parent whose handler returns while children are live becomes `waiting` (it holds no
slot). When its last child ends it is queued again in phase "finalize", and runs like any
task: its kind's finalize decides the result, or, without one, it completes with its
handler's result unless a child did not complete. With `fail_fast` (the default) the first
child that fails for good cancels its live siblings and fails the parent at once.

A task with unfinished dependencies is `blocked`. When all of them complete it becomes
pending; when one fails, is cancelled or expires, the dependent ends `dependency_failed`
(and so on down the graph) unless it was submitted with on_dependency_failure="ignore".
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from core.dispatch import MirrorTask
from core.runner import TaskRunner
from core.scheduler import _Run
from core.store import queries as q
from core.types import ACTIVE_STATES, EventKind, Submission, SubmitResult, TaskState

logger = logging.getLogger(__name__)

_ACTIVE = frozenset(s.value for s in ACTIVE_STATES)


class TaskTrees(TaskRunner):
    """Parent/child and dependency bookkeeping on top of running tasks."""

    # -- linking new and adopted tasks ----------------------------------------------------

    def _link(self, t: MirrorTask, blockers: Iterable[int]) -> None:
        if t.parent_id is not None:
            self._link_parent(t)
        for dep in blockers:
            self._dependents.setdefault(dep, set()).add(t.id)
            t.blockers += 1
        if t.state == TaskState.BLOCKED and t.blockers == 0:
            self._unblock(t)

    def _link_parent(self, t: MirrorTask) -> None:
        assert t.parent_id is not None
        kids = self._kids.setdefault(t.parent_id, set())
        if t.id in kids:
            return
        kids.add(t.id)
        p = self._tasks.get(t.parent_id)
        if p is not None:
            p.children += 1
            p.spawned = True

    def _on_adopted(self, tasks: list[MirrorTask]) -> None:
        self._link_adopted(tasks)

    def _link_adopted(self, tasks: list[MirrorTask]) -> int:
        """Link tasks read from the database; returns how many waiting parents it queued to
        finalize (their children all ended while nobody watched, e.g. before a crash)."""
        ids = [t.id for t in tasks]
        if not ids:
            return 0
        with_children = set(self._db.read(lambda c: q.parents_among(c, ids)))
        for t in tasks:
            if t.id in with_children:
                t.spawned = True
            if t.parent_id is not None:
                self._link_parent(t)
        for t in tasks:
            if t.state == TaskState.BLOCKED and self._tasks.get(t.id) is t:
                self._evaluate_blocked(t)
        finalized = 0
        for t in tasks:
            if t.state == TaskState.WAITING and t.children == 0 and self._tasks.get(t.id) is t:
                self._resolve_parent(t)
                finalized += 1
        return finalized

    def _evaluate_blocked(self, t: MirrorTask) -> None:
        """Count a blocked task's unfinished dependencies from the database (by task id; a
        dependency pruned from history counts as ended)."""
        t.blockers = 0
        for dep, state in self._db.read(lambda c: q.dependency_states(c, t.id)):
            if state is None or state == TaskState.COMPLETED:
                continue
            if state in _ACTIVE:
                self._dependents.setdefault(dep, set()).add(t.id)
                t.blockers += 1
            elif t.dep_policy != "ignore":
                self._dependency_failed(t, dep, state)
                return
        if t.blockers == 0:
            self._unblock(t)

    # -- transitions of tasks that are not running -------------------------------------

    def _unblock(self, t: MirrorTask) -> None:
        t.blockers = 0
        db = self._db
        now = self._now()
        self._settle(t)
        db.writer.enqueue(lambda conn: db.tr.unblock(conn, t.id, now))
        self._request_tick()

    def _resolve_parent(self, t: MirrorTask) -> None:
        t.phase = "finalize"
        db = self._db
        now = self._now()
        self._settle(t)
        db.writer.enqueue(lambda conn: db.tr.finalize_ready(conn, t.id, now, 0))
        self._request_tick()

    def _end_idle(
        self,
        t: MirrorTask,
        state: TaskState,
        event: EventKind,
        error: str,
        data: dict[str, Any] | None = None,
        cleanup: str | None = None,
    ) -> None:
        """End a task that is not running, then tell its parent and dependents."""
        db = self._db
        now = self._now()
        self._forget(t)
        t.state = state

        def after(ok: bool | None, err: BaseException | None) -> None:
            if err is not None or not ok:
                logger.error("could not end task %s as %s: %s", t.id, state, err or "it was not idle")
                return
            self._after_terminal(t.id)
            spec = self._kinds.get(t.kind)
            if cleanup and t.started and spec is not None and spec.cleanup is not None:
                if self._tg is not None:
                    self._tg.create_task(self._cleanup_idle(t, spec, cleanup))
                else:  # cancelled before start(): the hook runs as soon as the engine does
                    self._deferred_cleanups.append(functools.partial(self._cleanup_idle, t, spec, cleanup))

        db.writer.enqueue(
            lambda conn: db.tr.end_idle(
                conn, t.id, now, state=state, event=event, error=error, event_data=data
            ),
            after,
        )
        self._task_ended(t, state, error)
        self._request_tick()

    async def _cleanup_idle(self, t: MirrorTask, spec: Any, reason: str) -> None:
        import json

        run = _Run(self, t)
        row = self._db.read(
            lambda c: c.execute("SELECT payload, checkpoint FROM tasks WHERE id = ?", (t.id,)).fetchone()
        )
        run.payload = json.loads(row[0])
        run.checkpoint = json.loads(row[1]) if row[1] else None
        run.finished = True
        await self._run_cleanup(spec, run.ctx, run.payload, reason)

    def _dependency_failed(self, t: MirrorTask, dep: int, dep_state: str) -> None:
        self._end_idle(
            t,
            TaskState.DEPENDENCY_FAILED,
            EventKind.DEPENDENCY_FAILED,
            f"dependency task {dep} {dep_state}",
            {"dependency": dep, "state": dep_state},
        )

    def _cancel_task(self, t: MirrorTask, error: str) -> None:
        """Cancel one task (and, through _task_ended, what hangs below it)."""
        if t.run is not None:
            self._interrupt(t.run, "cancel")
            self._cancel_children(t, f"cancelled: its parent task {t.id} was cancelled")
        else:
            self._end_idle(t, TaskState.CANCELLED, EventKind.CANCELLED, error, cleanup="cancelled")

    def _cancel_children(self, t: MirrorTask, error: str) -> None:
        for kid in sorted(self._kids.get(t.id, ())):
            k = self._tasks.get(kid)
            if k is not None:
                self._cancel_task(k, error)

    # -- the end of a task moves its parent and dependents ------------------------------

    def _task_ended(self, t: MirrorTask, state: str, error: str | None) -> None:
        self._fail_reasons.pop(t.id, None)
        if self._kids.get(t.id):  # a parent that ended: what is left of its tree goes
            self._cancel_children(t, f"cancelled: its parent task {t.id} {state}")
        if t.parent_id is not None:
            kids = self._kids.get(t.parent_id)
            if kids is not None:
                kids.discard(t.id)
                if not kids:
                    del self._kids[t.parent_id]
            p = self._tasks.get(t.parent_id)
            if p is not None and p.children > 0:
                p.children -= 1
                if state == TaskState.FAILED and p.fail_fast:
                    self._fail_fast(p, f"child task {t.id} failed: {error}")
                elif p.children == 0 and p.state == TaskState.WAITING:
                    self._resolve_parent(p)
        for dep_id in sorted(self._dependents.pop(t.id, ())):
            d = self._tasks.get(dep_id)
            if d is None or d.state != TaskState.BLOCKED:
                continue
            if state == TaskState.COMPLETED or d.dep_policy == "ignore":
                d.blockers -= 1
                if d.blockers <= 0:
                    self._unblock(d)
            else:
                self._dependency_failed(d, t.id, state)

    def _fail_fast(self, p: MirrorTask, error: str) -> None:
        """A child of `p` failed for good: cancel its live siblings and fail `p`."""
        if p.run is not None:
            self._fail_reasons[p.id] = error
            self._interrupt(p.run, "child_failed")
            self._cancel_children(p, f"cancelled: a sibling failed ({error})")
        elif p.state not in (TaskState.RUNNING,):
            self._end_idle(p, TaskState.FAILED, EventKind.FAILED, error, {"error": error}, cleanup="failed")

    # -- spawning from inside a task -----------------------------------------------------

    async def _spawn(self, run: _Run, subs: Sequence[Any], parent_id: int) -> list[SubmitResult]:
        """Submit children of `parent_id` in one transaction; they inherit its priority and
        group unless given their own."""
        p = self._tasks.get(parent_id)
        rows = []
        for i, sub in enumerate(subs):
            if not isinstance(sub, Submission):
                from core.errors import InvalidArgument

                raise InvalidArgument(f"children[{i}]: must be a Submission, got {type(sub).__name__}")
            changes: dict[str, Any] = {"parent": parent_id}
            if sub.priority is None and p is not None:
                changes["priority"] = p.priority
            if sub.group is None and p is not None:
                changes["group"] = p.group
            rows.append(self._new_task(dataclasses.replace(sub, **changes)))
        return await self._submit_rows(rows, long=len(rows) > 2000)
