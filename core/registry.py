"""Registered kinds: a handler and the defaults its tasks get."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidArgument, InvalidSubmission
from core.types import DEFAULT_RETRY, IoBudget, KindInfo, Priority, RetryPolicy, RunIn
from core.validation import check_kind, check_priority, check_schema

Handler = Callable[..., Any]
RUN_IN = ("loop", "thread", "process")


@dataclass(frozen=True, slots=True)
class KindSpec:
    handler: Handler
    info: KindInfo
    finalize: Handler | None = None
    cleanup: Callable[..., Awaitable[None]] | None = None
    validate: Callable[[Any], Any] | None = None  # submit-time checks beyond the schema
    defaults: Callable[[Any], Mapping[str, Any]] | None = None  # group/key/label from the payload


def make_spec(
    kind: str,
    handler: Handler,
    *,
    priority: int = Priority.NORMAL,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    io: IoBudget | None = None,
    group: str | None = None,
    ttl: float | None = None,
    finalize: Handler | None = None,
    cleanup: Callable[..., Awaitable[None]] | None = None,
    run_in: RunIn = "loop",
    schema: Mapping[str, Any] | None = None,
    description: str | None = None,
    validate: Callable[[Any], Any] | None = None,
    defaults: Callable[[Any], Mapping[str, Any]] | None = None,
    fail_fast: bool = True,
) -> KindSpec:
    try:
        check_kind(kind)
        check_priority(priority)
    except ValueError as e:
        raise InvalidArgument(str(e)) from e
    if run_in not in RUN_IN:
        raise InvalidArgument(f"run_in: must be one of {', '.join(RUN_IN)}, got {run_in!r}")
    if not callable(handler):
        raise InvalidArgument(f"handler for {kind!r}: must be callable, got {handler!r}")
    is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__  # an object with an async __call__
    )
    if run_in == "loop" and not is_async:
        raise InvalidArgument(
            f"handler for {kind!r}: run_in='loop' needs an async function; "
            "use run_in='thread' or 'process' for a plain (blocking) one"
        )
    if run_in != "loop" and is_async:
        raise InvalidArgument(f"handler for {kind!r}: run_in={run_in!r} needs a plain function")
    if finalize is not None and not inspect.iscoroutinefunction(finalize):
        raise InvalidArgument(f"finalize for {kind!r}: must be an async function (ctx, payload, children)")
    if cleanup is not None and not inspect.iscoroutinefunction(cleanup):
        raise InvalidArgument(f"cleanup for {kind!r}: must be an async function")
    if validate is not None and not callable(validate):
        raise InvalidArgument(
            f"validate for {kind!r}: must be callable (payload -> payload), got {validate!r}"
        )
    if defaults is not None and not callable(defaults):
        raise InvalidArgument(
            f"defaults for {kind!r}: must be callable (payload -> {{group, key, label}}), got {defaults!r}"
        )
    if not isinstance(fail_fast, bool):
        raise InvalidArgument(f"fail_fast: must be a bool, got {fail_fast!r}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidArgument(f"retry: must be a RetryPolicy, got {retry!r}")
    if io is not None and not isinstance(io, IoBudget):
        raise InvalidArgument(f"io: must be an IoBudget, got {io!r}")
    for name, value in (("timeout", timeout), ("ttl", ttl)):
        if value is not None and (not isinstance(value, int | float) or not value > 0):
            raise InvalidArgument(f"{name}: must be a number of seconds > 0, got {value!r}")
    if schema is not None:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(dict(schema))
        except SchemaError as e:
            raise InvalidArgument(f"schema for {kind!r}: {e.message}") from e
    info = KindInfo(
        kind=kind,
        schema=dict(schema) if schema is not None else None,
        description=description or (inspect.getdoc(handler) or "").split("\n")[0] or None,
        priority=int(priority),
        group=group,
        retry=retry or DEFAULT_RETRY,
        timeout=float(timeout) if timeout is not None else None,
        ttl=float(ttl) if ttl is not None else None,
        io=io,
        run_in=run_in,
        fail_fast=fail_fast,
    )
    return KindSpec(
        handler=handler, info=info, finalize=finalize, cleanup=cleanup, validate=validate, defaults=defaults
    )


def info_to_json(info: KindInfo) -> dict[str, Any]:
    return {
        "kind": info.kind,
        "schema": info.schema,
        "description": info.description,
        "priority": info.priority,
        "group": info.group,
        "retry": info.retry.to_json(),
        "timeout": info.timeout,
        "ttl": info.ttl,
        "io": info.io.to_json() if info.io else None,
        "run_in": info.run_in,
        "fail_fast": info.fail_fast,
    }


def info_from_json(data: Mapping[str, Any]) -> KindInfo:
    return KindInfo(
        kind=data["kind"],
        schema=data.get("schema"),
        description=data.get("description"),
        priority=data.get("priority", Priority.NORMAL),
        group=data.get("group"),
        retry=RetryPolicy.from_json(data["retry"]) if data.get("retry") else DEFAULT_RETRY,
        timeout=data.get("timeout"),
        ttl=data.get("ttl"),
        io=IoBudget.from_json(data["io"]) if data.get("io") else None,
        run_in=data.get("run_in", "loop"),
        fail_fast=bool(data.get("fail_fast", True)),
    )


def checked_payload(spec: KindSpec, payload: Any) -> Any:
    """Run a kind's submit-time `validate` hook: its InvalidSubmission goes to the caller;
    any other error is reported as a problem with the payload, naming the kind."""
    assert spec.validate is not None
    check_schema(spec.info.kind, spec.info.schema, payload)  # the hook may rely on the shape
    try:
        out = spec.validate(payload)
    except InvalidSubmission:
        raise
    except Exception as e:
        raise InvalidSubmission("payload", f"{spec.info.kind}: {e}") from e
    return payload if out is None else out


DEFAULTABLE = ("group", "key", "label")


def submit_defaults(spec: KindSpec, payload: Any) -> dict[str, Any]:
    """A kind's `defaults` hook: the group, dedup key and label its tasks get when the
    caller gives none (a network kind: the endpoint's host; source + destination)."""
    if spec.defaults is None:
        return {}
    try:
        found = dict(spec.defaults(payload))
    except InvalidSubmission:
        raise
    except Exception as e:
        raise InvalidSubmission("payload", f"{spec.info.kind}: {e}") from e
    return {name: found[name] for name in DEFAULTABLE if found.get(name) is not None}
