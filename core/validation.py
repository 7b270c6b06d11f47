"""Turning submit() arguments into a NewTask row, or an InvalidSubmission naming the field.
Shared by Engine and Client so both refuse exactly the same input."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from core.errors import InvalidArgument, InvalidSubmission
from core.store.tasks import NewTask, dumps
from core.types import DEFAULT_RETRY, JSON, IoBudget, KindInfo, Priority, RetryPolicy, Submission, TaskState

MAX_PAYLOAD_BYTES = 1 << 20
MAX_KEY_BYTES = 256
MAX_TAGS = 32
MAX_TAG_KEY_BYTES = 64
MAX_TAG_VALUE_BYTES = 256
MAX_LABEL_CHARS = 1024
MAX_GROUP_BYTES = 256
MAX_KIND_BYTES = 128
MAX_SECONDS = 100 * 365.25 * 86400  # a century: far enough, and still a valid datetime
DUPLICATE_POLICIES = ("skip", "supersede", "reject", "requeue")
DEPENDENCY_POLICIES = ("cancel", "ignore")

_validators: dict[str, Any] = {}


def check_priority(value: object, field: str = "priority") -> int:
    if type(value) is int and 0 <= value <= 255:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSubmission(field, f"must be an int in 0..255 (or a Priority), got {value!r}")
    if not 0 <= value <= 255:
        raise InvalidSubmission(field, f"must be in 0..255 (lower is more urgent), got {value}")
    return int(value)


def check_seconds(field: str, value: object, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSubmission(field, f"must be a number of seconds, got {value!r}")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise InvalidSubmission(field, f"must be finite, got {value!r}")
    if v < 0 or (positive and v == 0):
        raise InvalidSubmission(field, f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
    if v > MAX_SECONDS:
        raise InvalidSubmission(field, f"must be at most a century ({MAX_SECONDS:.0f} s), got {value!r}")
    return v


def utf8_size(field: str, text: str) -> int:
    """Encoded size of `text`; text SQLite cannot store (a lone surrogate) names its field."""
    try:
        return len(text.encode())
    except UnicodeEncodeError as e:
        raise InvalidSubmission(
            field, f"is not valid Unicode text ({e.reason} at position {e.start})"
        ) from None


def check_kind(kind: object) -> str:
    if not isinstance(kind, str) or not kind.strip():
        raise InvalidSubmission("kind", f"must be a non-empty string, got {kind!r}")
    if utf8_size("kind", kind) > MAX_KIND_BYTES:
        raise InvalidSubmission("kind", f"must be at most {MAX_KIND_BYTES} bytes")
    return kind


def _check_text(field: str, value: object, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise InvalidSubmission(field, f"must be a string, got {type(value).__name__}")
    size = utf8_size(field, value)
    if size > max_bytes:
        raise InvalidSubmission(field, f"must be at most {max_bytes} bytes, got {size}")
    return value


def check_dependency_ids(depends_on: object) -> tuple[int, ...]:
    """Task ids a submission depends on (names are resolved by submit_graph first)."""
    if not depends_on:
        return ()
    if isinstance(depends_on, str | bytes | int) or not isinstance(depends_on, Iterable):
        raise InvalidSubmission("depends_on", f"must be a list of task ids, got {depends_on!r}")
    out: dict[int, None] = {}
    for dep in depends_on:
        if isinstance(dep, bool) or not isinstance(dep, int) or dep <= 0:
            raise InvalidSubmission("depends_on", f"must be a list of task ids, got {dep!r} in it")
        out[dep] = None
    return tuple(out)


def check_states(states: Iterable[str] | str | None, *, field: str = "states") -> list[str] | None:
    """Task state names, checked; None means no filter."""
    if states is None:
        return None
    if isinstance(states, str):
        states = [states]
    out = []
    for s in states:
        try:
            out.append(TaskState(s).value)
        except ValueError:
            names = ", ".join(st.value for st in TaskState)
            raise InvalidArgument(f"{field}: unknown state {s!r} (one of {names})") from None
    return out


def encode_payload(payload: JSON) -> str:
    if payload is None:
        return "null"
    try:
        text = dumps(payload)
    except (TypeError, ValueError) as e:
        raise InvalidSubmission("payload", f"not JSON-serialisable: {e}") from e
    size = utf8_size("payload", text)
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidSubmission("payload", f"{size} bytes encoded, more than the 1 MiB limit")
    return text


def check_schema(kind: str, schema: Mapping[str, Any] | None, payload: JSON) -> None:
    if not schema:
        return
    validator = _validators.get(kind)
    if validator is None or validator.schema != schema:
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(dict(schema))
        _validators[kind] = validator
    errors = sorted(validator.iter_errors(payload), key=lambda e: (len(e.path), e.path))
    if errors:
        err = errors[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path)
        raise InvalidSubmission(f"payload{path}", err.message)


def check_tags(tags: object) -> dict[str, str] | None:
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise InvalidSubmission("tags", f"must be a mapping of str to str, got {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise InvalidSubmission("tags", f"at most {MAX_TAGS} pairs, got {len(tags)}")
    out: dict[str, str] = {}
    for k, v in tags.items():
        if not isinstance(k, str) or not k:
            raise InvalidSubmission("tags", f"keys must be non-empty strings, got {k!r}")
        _check_text(f"tags[{k!r}]", k, MAX_TAG_KEY_BYTES)
        _check_text(f"tags[{k!r}]", v, MAX_TAG_VALUE_BYTES)
        out[k] = v
    return out or None


def new_task(
    sub: Submission,
    *,
    info: KindInfo | None,
    now: float,
    schedule_id: int | None = None,
    retry_of: int | None = None,
) -> NewTask:
    """Validate one submission against its kind's defaults and schema."""
    return build_task(
        sub.kind,
        sub.payload,
        info=info,
        now=now,
        schedule_id=schedule_id,
        retry_of=retry_of,
        priority=sub.priority,
        key=sub.key,
        on_duplicate=sub.on_duplicate,
        run_at=sub.run_at,
        delay=sub.delay,
        depends_on=sub.depends_on,
        on_dependency_failure=sub.on_dependency_failure,
        parent=sub.parent,
        group=sub.group,
        tags=sub.tags,
        label=sub.label,
        retry=sub.retry,
        timeout=sub.timeout,
        ttl=sub.ttl,
        io=sub.io,
        fail_fast=sub.fail_fast,
    )


def build_task(
    kind: str,
    payload: JSON,
    *,
    info: KindInfo | None,
    now: float,
    schedule_id: int | None = None,
    retry_of: int | None = None,
    priority: int | None = None,
    key: str | None = None,
    on_duplicate: str = "skip",
    run_at: datetime | None = None,
    delay: float | None = None,
    depends_on: Any = (),
    on_dependency_failure: str = "cancel",
    parent: int | None = None,
    group: str | None = None,
    tags: Mapping[str, str] | None = None,
    label: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    ttl: float | None = None,
    io: IoBudget | None = None,
    fail_fast: bool | None = None,
) -> NewTask:
    """Validate submit() arguments; raises InvalidSubmission naming the field."""
    kind = check_kind(kind)
    payload_json = encode_payload(payload)
    if info is not None and info.schema:
        check_schema(kind, info.schema, json.loads(payload_json))
    priority = check_priority(
        priority if priority is not None else (info.priority if info else Priority.NORMAL)
    )
    if key is not None:
        if not isinstance(key, str) or not key:
            raise InvalidSubmission("key", f"must be a non-empty string, got {key!r}")
        _check_text("key", key, MAX_KEY_BYTES)
    if on_duplicate not in DUPLICATE_POLICIES:
        raise InvalidSubmission(
            "on_duplicate", f"must be one of {', '.join(DUPLICATE_POLICIES)}, got {on_duplicate!r}"
        )
    if on_dependency_failure not in DEPENDENCY_POLICIES:
        raise InvalidSubmission(
            "on_dependency_failure",
            f"must be one of {', '.join(DEPENDENCY_POLICIES)}, got {on_dependency_failure!r}",
        )
    deps = check_dependency_ids(depends_on)
    if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int) or parent <= 0):
        raise InvalidSubmission("parent", f"must be a task id, got {parent!r}")
    if group is None and info is not None:
        group = info.group
    if group is not None:
        if not group:
            raise InvalidSubmission("group", "must be a non-empty string or None")
        _check_text("group", group, MAX_GROUP_BYTES)
    if label is not None:
        if not isinstance(label, str):
            raise InvalidSubmission("label", f"must be a string, got {type(label).__name__}")
        if len(label) > MAX_LABEL_CHARS:
            raise InvalidSubmission("label", f"must be at most {MAX_LABEL_CHARS} characters")
        utf8_size("label", label)
    checked_tags = check_tags(tags) if tags is not None else None
    run_at_ts: float | None = None
    if run_at is not None:
        if delay is not None:
            raise InvalidSubmission("run_at", "give run_at or delay, not both")
        if not isinstance(run_at, datetime):
            raise InvalidSubmission("run_at", f"must be a datetime, got {type(run_at).__name__}")
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise InvalidSubmission("run_at", "must be timezone-aware (naive datetimes are ambiguous)")
        run_at_ts = run_at.timestamp()
    elif delay is not None:
        run_at_ts = now + check_seconds("delay", delay, positive=False)
    options: dict[str, Any] = {}
    if retry is not None:
        if not isinstance(retry, RetryPolicy):
            raise InvalidSubmission("retry", f"must be a RetryPolicy, got {type(retry).__name__}")
        options["retry"] = retry.to_json()
    policy = retry or (info.retry if info else DEFAULT_RETRY)
    if timeout is not None:
        options["timeout"] = check_seconds("timeout", timeout)
    elif info is not None and info.timeout is not None:
        options["timeout"] = info.timeout
    if ttl is None and info is not None:
        ttl = info.ttl
    expires_at = None
    if ttl is not None:
        options["ttl"] = check_seconds("ttl", ttl)
        expires_at = now + options["ttl"]
    if io is not None:
        if not isinstance(io, IoBudget):
            raise InvalidSubmission("io", f"must be an IoBudget, got {type(io).__name__}")
        options["io"] = io.to_json()
    if fail_fast is None:
        fail_fast = info.fail_fast if info is not None else True
    if fail_fast is not True:
        if not isinstance(fail_fast, bool):
            raise InvalidSubmission("fail_fast", f"must be a bool, got {fail_fast!r}")
        options["fail_fast"] = False
    if on_dependency_failure != "cancel":
        options["on_dependency_failure"] = on_dependency_failure
    requeue_json = None
    if on_duplicate == "requeue":
        requeue_json = dumps({"payload": json.loads(payload_json), "priority": priority})
    return NewTask(
        kind=kind,
        payload_json=payload_json,
        priority=priority,
        group=group,
        label=label,
        key=key,
        on_duplicate=on_duplicate,
        parent_id=parent,
        schedule_id=schedule_id,
        retry_of=retry_of,
        max_retries=policy.max_retries,
        options_json=dumps(options) if options else None,
        tags=checked_tags,
        created_at=now,
        run_at=run_at_ts,
        expires_at=expires_at,
        requeue_json=requeue_json,
        depends_on=deps,
        dep_policy=on_dependency_failure,
        fail_fast=fail_fast,
    )


def check_positive(
    name: str, value: object, *, allow_none: bool = False, unit: str = "a number"
) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidArgument(f"{name}: must be {unit} > 0{' or None' if allow_none else ''}, got {value!r}")
    return float(value)


def check_rate_limit(
    scope: object, per_second: object, burst: object
) -> tuple[str, float | None, float | None]:
    """A rate limit's arguments: scope "kind:<kind>" or "group:<group>", rates > 0."""
    if not isinstance(scope, str) or not scope.startswith(("kind:", "group:")) or scope.endswith(":"):
        raise InvalidArgument(f"scope: must be 'kind:<kind>' or 'group:<group>', got {scope!r}")
    return (
        scope,
        check_positive("per_second", per_second, allow_none=True),
        check_positive("burst", burst, allow_none=True),
    )


def check_io_capacity(resource: object, bps: object) -> tuple[str, float | None]:
    from core.resources import RESOURCES

    if resource not in RESOURCES:
        raise InvalidArgument(f"resource: must be one of {', '.join(RESOURCES)}, got {resource!r}")
    return str(resource), check_positive("bps", bps, allow_none=True)


def check_group_name(group: object) -> str:
    if not isinstance(group, str) or not group:
        raise InvalidArgument(f"group: must be a non-empty string, got {group!r}")
    return group


def check_weight(weight: object) -> float | None:
    return check_positive("weight", weight, allow_none=True)


def check_min_slots(n: object, limit: int) -> int | None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= limit):
        raise InvalidArgument(f"min_slots: must be None or an int in 0..{limit}, got {n!r}")
    return n


APP_SETTING_PREFIX = "app:"  # settings the app keeps for itself (presets...), apart from the engine's
MAX_SETTING_NAME = 128


def check_setting(name: object, value: object = None) -> tuple[str, str | None]:
    """An app setting's stored name and JSON text (None deletes it)."""
    if not isinstance(name, str) or not name or len(name) > MAX_SETTING_NAME:
        raise InvalidArgument(f"name: must be a non-empty string of at most {MAX_SETTING_NAME} characters")
    if value is None:
        return APP_SETTING_PREFIX + name, None
    try:
        text = dumps(value)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"value: must be JSON-serialisable ({e})") from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise InvalidArgument(f"value: must be at most {MAX_PAYLOAD_BYTES} bytes as JSON")
    return APP_SETTING_PREFIX + name, text
