"""Join strategies for a parent's finalize: decide from how its children ended.

Each takes the `children` list finalize receives (ChildOutcome: id, state, result, error)
and returns the results of the completed children, in child order, or raises JoinFailed
naming the children that did not complete."""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.errors import InvalidArgument, JoinFailed
from core.types import JSON, ChildOutcome, TaskState


def _split(children: Sequence[ChildOutcome]) -> tuple[list[JSON], list[ChildOutcome]]:
    done = [c.result for c in children if c.state == TaskState.COMPLETED]
    failed = [c for c in children if c.state != TaskState.COMPLETED]
    return done, failed


def _fail(need: str, children: Sequence[ChildOutcome], failed: list[ChildOutcome]) -> JoinFailed:
    return JoinFailed(need, len(children), [(c.id, c.state.value, c.error) for c in failed])


def join_all(children: Sequence[ChildOutcome]) -> list[JSON]:
    """Every child must have completed."""
    done, failed = _split(children)
    if failed:
        raise _fail("all", children, failed)
    return done


def join_any(children: Sequence[ChildOutcome]) -> list[JSON]:
    """At least one child must have completed (or there were none)."""
    done, failed = _split(children)
    if children and not done:
        raise _fail("at least one", children, failed)
    return done


def join_quorum(children: Sequence[ChildOutcome], n: int) -> list[JSON]:
    """At least `n` children must have completed."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidArgument(f"n: must be an int >= 0, got {n!r}")
    done, failed = _split(children)
    if len(done) < n:
        raise _fail(f"at least {n}", children, failed)
    return done


def join_percentage(children: Sequence[ChildOutcome], p: float) -> list[JSON]:
    """At least the fraction `p` (0..1) of the children must have completed."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
        raise InvalidArgument(f"p: must be a fraction in 0..1, got {p!r}")
    need = math.ceil(p * len(children) - 1e-9)
    done, failed = _split(children)
    if len(done) < need:
        raise _fail(f"{p:.0%} (at least {need})", children, failed)
    return done
