"""Fire times: cron in time zones across both DST changes, intervals, bounds; properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from core.crontime import Trigger, check_cron, next_cron, next_every, wall_to_instant
from core.errors import InvalidSchedule
from core.schedules import describe, preview

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def fires(expr: str, tz: ZoneInfo, start: datetime, n: int) -> list[datetime]:
    out, t = [], start.timestamp()
    for _ in range(n):
        t = next_cron(expr, tz, t)
        out.append(datetime.fromtimestamp(t, tz))
    return out


@pytest.mark.parametrize(
    ("tz", "day", "gap_end"),
    [(PARIS, datetime(2026, 3, 29), "03:00"), (NEW_YORK, datetime(2026, 3, 8), "03:00")],
)
def test_given_spring_forward_then_a_missing_wall_time_fires_once_when_the_gap_ends(
    tz: ZoneInfo, day: datetime, gap_end: str
) -> None:
    got = fires("30 2 * * *", tz, day.replace(tzinfo=tz) - timedelta(days=1), 3)
    assert [f.strftime("%m-%d %H:%M") for f in got] == [
        (day - timedelta(days=1)).strftime("%m-%d 02:30"),
        day.strftime(f"%m-%d {gap_end}"),
        (day + timedelta(days=1)).strftime("%m-%d 02:30"),
    ]


def test_given_spring_forward_then_every_time_in_the_gap_collapses_into_one_fire() -> None:
    got = fires("*/20 * * * *", PARIS, datetime(2026, 3, 29, 1, 30, tzinfo=PARIS), 4)
    assert [f.strftime("%H:%M%z") for f in got] == ["01:40+0100", "03:00+0200", "03:20+0200", "03:40+0200"]


@pytest.mark.parametrize("tz", [PARIS, NEW_YORK])
def test_given_fall_back_then_a_repeated_wall_time_fires_once(tz: ZoneInfo) -> None:
    day = datetime(2026, 10, 25) if tz is PARIS else datetime(2026, 11, 1)
    hour = 2 if tz is PARIS else 1  # the repeated hour
    got = fires(f"30 {hour} * * *", tz, (day - timedelta(days=1)).replace(tzinfo=tz), 3)
    assert [f.strftime("%d %H:%M") for f in got] == [
        (day - timedelta(days=1)).strftime(f"%d {hour:02d}:30"), day.strftime(f"%d {hour:02d}:30"),
        (day + timedelta(days=1)).strftime(f"%d {hour:02d}:30"),
    ]  # fmt: skip
    every_20 = fires("*/20 * * * *", tz, datetime(day.year, day.month, day.day, hour - 1, 50, tzinfo=tz), 5)
    walls = [f.strftime("%H:%M") for f in every_20]
    assert len(walls) == len(set(walls))  # the second pass through the hour fires nothing


def test_given_a_gap_time_then_it_means_the_instant_the_gap_ends() -> None:
    t = wall_to_instant(datetime(2026, 3, 29, 2, 30), PARIS)
    assert datetime.fromtimestamp(t, PARIS).strftime("%H:%M%z") == "03:00+0200"
    repeated = wall_to_instant(datetime(2026, 10, 25, 2, 30), PARIS)
    assert datetime.fromtimestamp(repeated, PARIS).strftime("%H:%M%z") == "02:30+0200"  # the first one


def test_given_an_interval_then_it_is_fixed_rate_on_utc_across_dst() -> None:
    anchor = datetime(2026, 3, 28, 12, tzinfo=UTC).timestamp()
    t = next_every(anchor, 86400, anchor, anchor_fires=False)
    assert t - anchor == 86400  # a day is 86,400 s, whatever the wall clock does
    assert next_every(anchor, 60, anchor - 10, anchor_fires=True) == anchor
    assert next_every(anchor, 60, anchor + 61, anchor_fires=True) == anchor + 120


def test_given_bounds_then_fires_stay_inside_them() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC).timestamp()
    trig = Trigger(
        cron="0 * * * *", tz="UTC", start_at=start + 1800, end_at=start + 4 * 3600, created_at=start
    )
    got = list(trig.fires(start, start + 10 * 3600, 100))
    assert [int((g - start) / 3600) for g in got] == [1, 2, 3, 4]


def test_given_field_errors_then_each_names_its_field() -> None:
    assert check_cron("0 24 * * *") == ["hour must be 0–23, got 24"]
    assert check_cron("0 9 32 * *") == ["day of month must be 1–31, got 32"]
    assert check_cron("0 9 * 13 *") == ["month must be 1–12, got 13"]
    assert check_cron("0 9 * * FUNDAY") == ["day of week: unknown name 'FUNDAY'"]
    assert check_cron("99 0 9 * * *") == ["second must be 0–59, got 99"]
    assert check_cron("0 9 * JAN-MAR MON-FRI") == []
    with pytest.raises(InvalidSchedule, match="minute must be 0–59"):
        describe("61 * * * *")


def test_given_cron_then_describe_and_preview_read_it() -> None:
    assert describe("0 9 * * MON-FRI") == "At 09:00, Monday through Friday"
    assert describe("0 9,17 * * 1-5") == "At 09:00 and 17:00, Monday through Friday"
    got = preview("0 9,17 * * 1-5", "Europe/Paris", 3, after=datetime(2026, 1, 2, 10, tzinfo=PARIS))
    assert [g.strftime("%a %d %H:%M") for g in got] == ["Fri 02 17:00", "Mon 05 09:00", "Mon 05 17:00"]
    with pytest.raises(InvalidSchedule, match="unknown time zone"):
        preview("0 9 * * *", "Nowhere/City")


crons = st.sampled_from(
    [
        "*/7 * * * *",
        "0 */3 * * *",
        "30 2 * * *",
        "15,45 1-3 * * *",
        "0 0 1 * *",
        "0 9 * * MON-FRI",
        "*/10 * * * * *",
    ]
)
zones = st.sampled_from(["Europe/Paris", "America/New_York", "UTC", "Australia/Lord_Howe", "Asia/Kolkata"])
starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=200, deadline=None)
@given(expr=crons, tz_name=zones, start=starts)
def test_property_fires_strictly_increase_and_never_repeat_a_wall_time(
    expr: str, tz_name: str, start: datetime
) -> None:
    tz = ZoneInfo(tz_name)
    t = start.timestamp()
    seen_walls = set()
    for _ in range(40):
        nxt = next_cron(expr, tz, t)
        assert nxt > t
        wall = datetime.fromtimestamp(nxt, tz).replace(tzinfo=None)
        assert wall not in seen_walls
        seen_walls.add(wall)
        t = nxt


@settings(max_examples=200, deadline=None)
@given(expr=crons, start=starts)
def test_property_away_from_dst_fires_agree_with_croniter(expr: str, start: datetime) -> None:
    tz = ZoneInfo("Asia/Kolkata")  # no DST since 1945
    seconds_first = len(expr.split()) == 6
    ours = fires(expr, tz, start, 20)
    it = croniter(expr, start.astimezone(tz).replace(tzinfo=None), second_at_beginning=seconds_first)
    theirs = [it.get_next(datetime).replace(tzinfo=tz) for _ in range(20)]
    assert ours == theirs
