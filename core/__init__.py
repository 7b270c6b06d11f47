"""Taskdeck's engine: a durable priority task queue on SQLite. This module is the public
API; nothing else in `core` is a promise."""

from core.bandwidth import BandwidthWindow as BandwidthWindow
from core.client import Client as Client
from core.clock import Clock as Clock
from core.clock import SystemClock as SystemClock
from core.config import Aging as Aging
from core.context import SyncTaskContext as SyncTaskContext
from core.context import TaskContext as TaskContext
from core.engine import Engine as Engine
from core.engine import EngineConfig as EngineConfig
from core.errors import CorruptDatabase as CorruptDatabase
from core.errors import DependencyFailed as DependencyFailed
from core.errors import EngineClosed as EngineClosed
from core.errors import EngineLocked as EngineLocked
from core.errors import Interrupted as Interrupted
from core.errors import InvalidArgument as InvalidArgument
from core.errors import InvalidDependency as InvalidDependency
from core.errors import InvalidSchedule as InvalidSchedule
from core.errors import InvalidState as InvalidState
from core.errors import InvalidSubmission as InvalidSubmission
from core.errors import JoinFailed as JoinFailed
from core.errors import Permanent as Permanent
from core.errors import ScheduleNotFound as ScheduleNotFound
from core.errors import SchemaTooNew as SchemaTooNew
from core.errors import TaskdeckError as TaskdeckError
from core.errors import TaskNotFound as TaskNotFound
from core.errors import UnknownKind as UnknownKind
from core.errors import WaitTimeout as WaitTimeout
from core.joins import join_all as join_all
from core.joins import join_any as join_any
from core.joins import join_percentage as join_percentage
from core.joins import join_quorum as join_quorum
from core.schedules import Schedule as Schedule
from core.schedules import Schedules as Schedules
from core.schedules import ScheduleSpec as ScheduleSpec
from core.types import BandwidthStatus as BandwidthStatus
from core.types import ChildOutcome as ChildOutcome
from core.types import Event as Event
from core.types import EventKind as EventKind
from core.types import GroupInfo as GroupInfo
from core.types import IoBudget as IoBudget
from core.types import IoCounts as IoCounts
from core.types import KindInfo as KindInfo
from core.types import KindStats as KindStats
from core.types import LogLine as LogLine
from core.types import PauseReason as PauseReason
from core.types import Priority as Priority
from core.types import Recovery as Recovery
from core.types import RetryPolicy as RetryPolicy
from core.types import RunningTask as RunningTask
from core.types import Snapshot as Snapshot
from core.types import Submission as Submission
from core.types import SubmitOutcome as SubmitOutcome
from core.types import SubmitResult as SubmitResult
from core.types import TaskRecord as TaskRecord
from core.types import TaskState as TaskState

__all__ = [
    "Aging",
    "BandwidthStatus",
    "BandwidthWindow",
    "ChildOutcome",
    "Client",
    "Clock",
    "CorruptDatabase",
    "DependencyFailed",
    "Engine",
    "EngineClosed",
    "EngineConfig",
    "EngineLocked",
    "Event",
    "EventKind",
    "GroupInfo",
    "Interrupted",
    "InvalidArgument",
    "InvalidDependency",
    "InvalidSchedule",
    "InvalidState",
    "InvalidSubmission",
    "IoBudget",
    "IoCounts",
    "JoinFailed",
    "KindInfo",
    "KindStats",
    "LogLine",
    "PauseReason",
    "Permanent",
    "Priority",
    "Recovery",
    "RetryPolicy",
    "RunningTask",
    "Schedule",
    "ScheduleNotFound",
    "ScheduleSpec",
    "Schedules",
    "SchemaTooNew",
    "Snapshot",
    "Submission",
    "SubmitOutcome",
    "SubmitResult",
    "SyncTaskContext",
    "SystemClock",
    "TaskContext",
    "TaskNotFound",
    "TaskRecord",
    "TaskState",
    "TaskdeckError",
    "UnknownKind",
    "WaitTimeout",
    "join_all",
    "join_any",
    "join_percentage",
    "join_quorum",
]
