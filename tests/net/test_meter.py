"""SyncMeter: how a thread handler's bytes are drawn from the bandwidth budget. Each draw
is a round trip to the loop, so their number per multipart part is what is tested."""

from __future__ import annotations

import pytest

from core.jobs.net import common
from core.jobs.net.common import CHUNK, DRAW_MAX, SyncMeter

MiB = 1024 * 1024
READ = 128 * 1024  # what urllib3 reads from a request body at a time


class CountingCtx:
    """A SyncCtx without limits: each throttle call returns at once and is recorded."""

    def __init__(self) -> None:
        self.draws: list[int] = []
        self.sent = 0

    @property
    def interrupted(self) -> bool:
        return False

    def throttle(self, nbytes: int) -> None:
        self.draws.append(nbytes)

    def progress(
        self, fraction: object = None, message: object = None, done: object = None, total: object = None
    ) -> None:
        pass

    def record_io(self, read: int = 0, written: int = 0, sent: int = 0, received: int = 0) -> None:
        self.sent += sent

    def yield_point(self) -> None:
        pass


def send(ctx: CountingCtx, size: int) -> None:
    meter = SyncMeter(ctx, total=size)
    for _ in range(size // READ):
        meter.take(READ)
        meter.moved(READ)
    meter.report()


def test_given_parts_one_after_another_when_unlimited_then_each_part_after_the_first_takes_two_draws_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common, "_draw_hint", (CHUNK, 0.0), raising=False)  # as in a fresh process
    first = CountingCtx()
    send(first, 8 * MiB)
    assert first.draws == [CHUNK, 2 * CHUNK, 4 * CHUNK, 8 * CHUNK, DRAW_MAX, 8 * MiB - 31 * CHUNK]
    later = [CountingCtx() for _ in range(3)]
    for ctx in later:
        send(ctx, 8 * MiB)
    assert [len(c.draws) for c in later] == [2, 2, 2]
    assert all(max(c.draws) <= DRAW_MAX for c in later)


def test_given_a_part_when_its_bytes_are_drawn_then_no_more_is_drawn_than_it_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a meter drew and did not send would be lost to a bandwidth limit."""
    monkeypatch.setattr(common, "_draw_hint", (CHUNK, 0.0), raising=False)
    ctx = CountingCtx()
    send(ctx, 5 * MiB + 3 * READ)
    assert sum(ctx.draws) == 5 * MiB + 3 * READ == ctx.sent


def test_given_an_old_hint_when_a_meter_starts_then_it_starts_small_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A limit set since the last upload must not meet a 4 MiB first draw."""
    monkeypatch.setattr(common, "_draw_hint", (DRAW_MAX, -10.0), raising=False)
    ctx = CountingCtx()
    send(ctx, MiB)
    assert ctx.draws[0] == CHUNK
