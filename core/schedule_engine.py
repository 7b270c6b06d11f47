"""Firing schedules: one timer per schedule on the engine's clock (only the earliest is
slept on), the overlap and misfire policies, and what each run's end means for its
schedule (last result, failure streak, pause after N failures).

A fire whose instant passed more than `misfire_grace` ago — the engine was stopped, the
machine slept, the clock jumped — is missed, and the misfire policy decides: one catch-up
run, none, or every missed one (at most 10, one after another). The last instant handled
is stored (the watermark), so a clock set back never fires the same instant twice."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from core.clock import SystemClock
from core.dispatch import MirrorTask
from core.errors import InvalidArgument, ScheduleNotFound
from core.gating import ResourceEngine
from core.schedules import (
    RUN_ALL_CAP,
    Schedule,
    Schedules,
    ScheduleSpec,
    build_schedule,
    spec_with,
    task_for,
    to_record,
    trigger_of,
)
from core.store import schedules as store
from core.store.schedules import SchedRow
from core.store.tasks import NewTask, SubmitEffects
from core.types import EventKind, SubmitResult, TaskState

logger = logging.getLogger(__name__)

MISSED_COUNT_LIMIT = 100_000  # fires counted when working out what was missed
# On the real clock a fire is decided and committed this long before its instant, so the
# run only has to start at the instant (a run never starts before it is committed).
FIRE_LEAD = 0.010  # seconds
_SCHEDULE_OPS: dict[str, Callable[..., Awaitable[Any]]] = {
    "schedule_pause": lambda e, schedule_id: e._sched_set_paused(schedule_id, True),
    "schedule_resume": lambda e, schedule_id: e._sched_set_paused(schedule_id, False),
    "schedule_remove": lambda e, schedule_id: e._sched_remove(schedule_id),
    "schedule_update": lambda e, schedule_id, changes: e._sched_update(schedule_id, _from_json(changes)),
    "schedule_run_now": lambda e, schedule_id: e._sched_run_now(schedule_id),
}


def fire_lead(clock: object) -> float:
    """How long before its instant a fire is committed: FIRE_LEAD on the real clock; none
    on an injected one, whose time only moves when a test moves it."""
    return FIRE_LEAD if type(clock) is SystemClock else 0.0


def _from_json(changes: dict[str, Any]) -> dict[str, Any]:
    """Schedule changes from a client's request (datetimes arrive as ISO text)."""
    return {
        k: datetime.fromisoformat(v["$datetime"]) if isinstance(v, dict) and "$datetime" in v else v
        for k, v in changes.items()
    }


class ScheduleEngine(ResourceEngine):
    """Schedules on top of control: `engine.schedules` is the API object."""

    @property
    def schedules(self) -> Schedules:
        """Add, change and inspect schedules (see core.schedules.Schedules)."""
        return Schedules(self)

    # -- loading and arming ------------------------------------------------------------

    def _load_schedules(self, rows: list[SchedRow]) -> None:
        for row in rows:
            self._scheds[row.id] = row

    def _arm_all(self) -> None:
        for s in self._scheds.values():
            self._arm(s)

    def _arm(self, s: SchedRow) -> None:
        old = self._sched_timers.pop(s.id, None)
        if old is not None:
            old.cancel()
        if s.paused or s.ended or s.next_fire is None:
            return
        due = s.next_fire + (self._rng.uniform(0, s.jitter) if s.jitter else 0.0)
        lead = fire_lead(self._clock)
        self._sched_timers[s.id] = self._timers.call_at(
            due - lead, functools.partial(self._fire, s.id, s.next_fire, due)
        )

    def _schedule(self, schedule_id: int) -> SchedRow:
        self._check_open()
        s = self._scheds.get(schedule_id)
        if s is None:
            raise ScheduleNotFound(schedule_id)
        return s

    # -- firing --------------------------------------------------------------------------

    def _fire(self, schedule_id: int, nominal: float, instant: float | None = None) -> None:
        """Fire `nominal` (its run starts at `instant`: `nominal` plus jitter). On the real
        clock this runs FIRE_LEAD before the instant: the run is committed then, as a task
        waiting for the instant (run_at), so at the instant only its start is left. A schedule with a run
        still active waits for the instant itself (the overlap policy looks at that)."""
        s = self._scheds.get(schedule_id)
        if s is None or s.paused or s.ended or s.next_fire != nominal or self._closed:
            return
        now = self._now()
        early = instant is not None and now < instant
        if early and any(t in self._tasks for t in self._sched_runs.get(schedule_id, ())):
            assert instant is not None
            self._sched_timers[schedule_id] = self._timers.call_at(
                instant, functools.partial(self._fire, schedule_id, nominal)
            )
            return
        self._sched_timers.pop(schedule_id, None)
        trigger = trigger_of(s)
        due = [nominal, *trigger.fires(nominal, now, MISSED_COUNT_LIMIT)]
        missed = [f for f in due if now - f > s.misfire_grace]
        on_time = len(missed) < len(due)
        runs: list[str] = []  # how each run to submit was triggered
        note = None
        if missed:
            n = len(missed)
            count = f"{n}" if n < MISSED_COUNT_LIMIT else f"more than {MISSED_COUNT_LIMIT}"
            runs_text = "run" if n == 1 else "runs"
            if s.misfire == "run_once":
                runs = ["schedule" if on_time else "catch-up"]
                note = f"missed {count} {runs_text} — ran once at {self._local(now):%H:%M}"
            elif s.misfire == "skip":
                runs = ["schedule"] if on_time else []
                note = f"missed {count} {runs_text} — skipped"
            else:
                runs = ["catch-up"] * min(n, RUN_ALL_CAP) + (["schedule"] if on_time else [])
                note = f"missed {count} {runs_text} — ran {len(runs)} at {self._local(now):%H:%M}"
        else:
            runs = ["schedule"]  # several due at once within the grace: one run
        if s.max_runs is not None:
            runs = runs[: max(0, s.max_runs - s.run_count)]
        s.last_fire = max(due[-1], s.last_fire or due[-1])
        s.next_fire = trigger.next_after(max(s.last_fire, now))
        if s.next_fire is None or (s.max_runs is not None and s.run_count + len(runs) >= s.max_runs):
            s.ended = True
        if missed:
            s.missed_runs, s.missed_note = len(missed), note
        self._fire_runs(
            s,
            runs,
            chained=s.misfire == "run_all" and len(runs) > 1,
            nominal=nominal,
            missed=(len(missed), note) if missed else None,
            run_at=instant if early else None,
        )
        self._arm(s)

    def _local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts).astimezone()

    def _fire_runs(
        self,
        s: SchedRow,
        runs: list[str],
        *,
        chained: bool,
        nominal: float,
        missed: tuple[int, str | None] | None,
        run_at: float | None = None,
    ) -> None:
        """Submit the runs of one fire (after the overlap policy) and store the schedule;
        with `run_at`, the runs wait for that instant."""
        now = self._now()
        info = self._kinds[s.kind].info if s.kind in self._kinds else None
        active = sorted(t for t in self._sched_runs.get(s.id, ()) if t in self._tasks)
        rows: list[NewTask] = []
        skipped: str | None = None
        if runs and not chained:
            if s.overlap == "skip" and active:
                skipped, runs = f"skipped: its previous run (task {active[-1]}) is still active", []
            elif s.overlap == "queue" and len(active) >= 2:
                skipped, runs = "skipped: a run is active and another already waits", []
            elif s.overlap == "replace":
                for task_id in active:
                    self._cancel_task(self._tasks[task_id], "replaced by a newer run of its schedule")
        for i, trig in enumerate(runs):
            row = task_for(s, info=info, now=now, trigger=trig)
            if run_at is not None:
                row.run_at = run_at
            if chained and i:  # run_all: one after another (-1: the first row of this batch)
                row.depends_on, row.dep_policy = (-i,), "ignore"
            elif s.overlap == "queue" and active and not chained:
                row.depends_on, row.dep_policy = (active[-1],), "ignore"
            rows.append(row)
        s.run_count += len(rows)
        db = self._db
        pause_mask = self._pause_mask

        def op(conn: Any) -> SubmitEffects | None:
            fx = db.sql.submit(conn, rows, pause_mask) if rows else None
            if missed is not None:
                db.sql.emit(
                    conn,
                    EventKind.SCHEDULE_MISSED,
                    now,
                    None,
                    {"count": missed[0], "note": missed[1], "policy": s.misfire},
                    schedule_id=s.id,
                )
            if skipped is not None:
                skipped_id = store.insert_skipped(conn, s, now, skipped, {"trigger": "schedule"})
                db.sql.emit(
                    conn, EventKind.SCHEDULE_SKIPPED, now, skipped_id, {"reason": skipped}, schedule_id=s.id
                )
            for res, trig in zip(fx.results if fx else [], runs, strict=False):
                s.last_task_id = res.id
                db.sql.emit(
                    conn,
                    EventKind.SCHEDULE_FIRED,
                    now,
                    res.id,
                    {"at": nominal, "trigger": trig, "outcome": res.outcome.value},
                    schedule_id=s.id,
                )
            store.save(conn, s)
            return fx

        def after(fx: SubmitEffects | None, err: BaseException | None) -> None:
            if err is not None:
                logger.error("schedule %s could not fire: %s", s.id, err)
                return
            if fx is not None:
                self._apply_submit_effects(fx)

        db.writer.enqueue(op, after)
        db.writer.flush()  # commit now, and dispatch at once: a fire starts its run promptly
        self._tick()

    # -- the end of a scheduled run ------------------------------------------------------

    def _task_ended(self, t: MirrorTask, state: str, error: str | None) -> None:
        super()._task_ended(t, state, error)
        if t.schedule_id is None:
            return
        runs = self._sched_runs.get(t.schedule_id)
        if runs is not None:
            runs.discard(t.id)
        s = self._scheds.get(t.schedule_id)
        if s is None:
            return
        s.last_result = state
        s.last_finished = self._now()
        s.failure_streak = s.failure_streak + 1 if state == TaskState.FAILED else 0
        paused_now = (
            s.pause_after_failures is not None and s.failure_streak >= s.pause_after_failures and not s.paused
        )
        if paused_now:
            s.paused = True
            self._arm(s)
        db = self._db
        now = self._now()

        def op(conn: Any) -> None:
            store.save(conn, s)
            if paused_now:
                db.sql.emit(
                    conn,
                    EventKind.SCHEDULE_PAUSED,
                    now,
                    None,
                    {"reason": f"{s.failure_streak} failed runs in a row"},
                    schedule_id=s.id,
                )

        db.writer.enqueue(op)
        self._request_tick()

    # -- the API (engine.schedules) ------------------------------------------------------

    async def _sched_add(self, specs: list[ScheduleSpec]) -> list[int]:
        self._check_open()
        now = self._now()
        rows = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, ScheduleSpec):
                raise InvalidArgument(f"specs[{i}]: must be a ScheduleSpec, got {type(spec).__name__}")
            info = self._kinds[spec.kind].info if spec.kind in self._kinds else None
            rows.append(build_schedule(spec, info=info, now=now))
        db = self._db

        def op(conn: Any) -> list[int]:
            ids = []
            for row in rows:
                ids.append(store.insert(conn, row))
                db.sql.emit(conn, EventKind.SCHEDULE_ADDED, now, None, {"name": row.name}, schedule_id=row.id)
            return ids

        ids = await db.writer.run(op, long=len(rows) > 2000)
        for row in rows:
            self._scheds[row.id] = row
            if self._started:
                self._arm(row)
        return ids

    async def _sched_update(self, schedule_id: int, changes: dict[str, Any]) -> Schedule:
        s = self._schedule(schedule_id)
        now = self._now()
        spec = spec_with(s, changes)
        info = self._kinds[spec.kind].info if spec.kind in self._kinds else None
        new = build_schedule(spec, info=info, now=now)
        for keep in (
            "id",
            "created_at",
            "paused",
            "last_fire",
            "last_task_id",
            "last_result",
            "last_finished",
            "run_count",
            "failure_streak",
            "missed_runs",
            "missed_note",
        ):
            setattr(new, keep, getattr(s, keep))
        new.next_fire = trigger_of(new).next_after(max(now, new.last_fire or now))
        new.ended = new.next_fire is None or (new.max_runs is not None and new.run_count >= new.max_runs)
        db = self._db

        def op(conn: Any) -> None:
            store.save(conn, new)
            db.sql.emit(
                conn, EventKind.SCHEDULE_UPDATED, now, None, {"changes": sorted(changes)}, schedule_id=new.id
            )

        await db.writer.run(op)
        self._scheds[new.id] = new
        if self._started:
            self._arm(new)
        return to_record(new)

    async def _sched_set_paused(self, schedule_id: int, paused: bool) -> None:
        s = self._schedule(schedule_id)
        if s.paused == paused:
            return
        now = self._now()
        s.paused = paused
        if paused:
            self._withdraw_early_runs(s, now, "its schedule was paused before this run started")
        if not paused:  # fires while it was paused are not missed: start over from now
            s.last_fire = max(now, s.last_fire or now)
            s.failure_streak = 0
            s.next_fire = trigger_of(s).next_after(s.last_fire)
            s.ended = s.ended or s.next_fire is None
        db = self._db
        kind = EventKind.SCHEDULE_PAUSED if paused else EventKind.SCHEDULE_RESUMED

        def op(conn: Any) -> None:
            store.save(conn, s)
            db.sql.emit(conn, kind, now, None, None, schedule_id=s.id)

        await db.writer.run(op)
        if self._started:
            self._arm(s)

    def _withdraw_early_runs(self, s: SchedRow, now: float, why: str) -> None:
        """Cancel the runs a fire committed ahead of their instant (FIRE_LEAD) that has not
        come yet: pausing or removing a schedule just before a fire means that fire never
        runs, as it would had the pause come a moment earlier."""
        for task_id in sorted(self._sched_runs.get(s.id, ())):
            t = self._tasks.get(task_id)
            if t is None or t.started or t.run is not None or t.run_at is None or t.run_at <= now:
                continue
            self._cancel_task(t, why)
            s.run_count = max(0, s.run_count - 1)
            if s.ended and s.next_fire is not None:
                s.ended = False  # it had ended with this run (max_runs); the run is gone

    async def _sched_remove(self, schedule_id: int) -> None:
        s = self._schedule(schedule_id)
        s.paused = True
        self._withdraw_early_runs(s, self._now(), "its schedule was removed before this run started")
        self._arm(s)
        db = self._db
        now = self._now()

        def op(conn: Any) -> None:
            store.delete(conn, s.id)
            db.sql.emit(conn, EventKind.SCHEDULE_REMOVED, now, None, {"name": s.name}, schedule_id=s.id)

        await db.writer.run(op)
        self._scheds.pop(schedule_id, None)

    async def _sched_run_now(self, schedule_id: int) -> SubmitResult:
        s = self._schedule(schedule_id)
        info = self._kinds[s.kind].info if s.kind in self._kinds else None
        now = self._now()
        row = task_for(s, info=info, now=now, trigger="manual")
        db = self._db

        def op(conn: Any) -> SubmitEffects:
            fx = db.sql.submit(conn, [row], self._pause_mask)
            db.sql.emit(
                conn,
                EventKind.SCHEDULE_FIRED,
                now,
                fx.results[0].id,
                {"at": now, "trigger": "manual"},
                schedule_id=s.id,
            )
            return fx

        fx = await db.writer.run(op)
        self._apply_submit_effects(fx)
        return fx.results[0]

    def _sched_get(self, schedule_id: int) -> Schedule | None:
        self._check_open()
        s = self._scheds.get(schedule_id)
        return None if s is None else to_record(s)

    def _sched_list(self) -> list[Schedule]:
        self._check_open()
        return [to_record(s) for _, s in sorted(self._scheds.items())]

    # -- clients -------------------------------------------------------------------------

    async def _inbox_call(self, op: str, kwargs: dict[str, Any]) -> None:
        handler = _SCHEDULE_OPS.get(op)
        if handler is None:
            await super()._inbox_call(op, kwargs)
        else:
            await handler(self, **kwargs)

    def _on_external_events(self, events: list[Any]) -> None:
        added = [
            e[4] for e in events if e[2] == "schedule_added" and e[4] is not None and e[4] not in self._scheds
        ]
        for schedule_id in added:  # a client added it: take it in and arm it
            for row in self._db.read(functools.partial(store.load, schedule_id=schedule_id)):
                self._scheds[row.id] = row
                if self._started:
                    self._arm(row)
