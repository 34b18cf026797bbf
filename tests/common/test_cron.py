"""Cron parsing and evaluation: Kestra syntax, withSeconds, timezones and DST."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from harrier.common.cron import (
    CronSchedule,
    missed_ticks,
    next_after,
    parse_cron,
    previous_before,
    ticks_between,
)

PARIS = "Europe/Paris"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(schedule: CronSchedule, instant: datetime) -> str:
    return instant.astimezone(schedule.zone).strftime("%Y-%m-%d %H:%M:%S%z")


# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(("expression", "message"), [
    ("61 * * * *", "'61 * * * *': minute must be 0-59, found 61"),
    ("0 24 * * *", "hour must be 0-23, found 24"),
    ("0 0 0 * *", "day-of-month must be 1-31, found 0"),
    ("0 0 * 13 *", "month must be 1-12"),
    ("0 0 * * 8", "day-of-week must be 0-7, found 8"),
    ("0 0 * FOO *", "month must be 1-12 or JAN-DEC, found 'FOO'"),
    ("*/0 * * * *", "minute step must be at least 1"),
    ("* * *", "expected 5 fields 'minute hour day-of-month month day-of-week', found 3"),
    ("1 2 3 4 5 6", "needs withSeconds: true"),
    ("@reboot", "unknown nickname; expected one of @yearly"),
    ("", "empty cron expression"),
    ("0 0 30 2 *", "never matches a date"),
    ("H * * * *", "minute must be 0-59, found 'H'"),
])
def test_invalid_expression_names_expression_and_expectation(expression: str,
                                                              message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_cron(expression)
    assert message in str(info.value)


def test_unknown_timezone_is_rejected_with_an_example() -> None:
    with pytest.raises(ValueError, match="'Mars/Olympus' is not a known IANA time zone"):
        parse_cron("* * * * *", timezone="Mars/Olympus")


def test_with_seconds_expects_six_fields_seconds_first() -> None:
    with pytest.raises(ValueError, match="expected 6 fields 'second minute hour"):
        parse_cron("* * * * *", with_seconds=True)
    with pytest.raises(ValueError, match="second must be 0-59, found 60"):
        parse_cron("60 * * * * *", with_seconds=True)


def test_every_five_seconds_with_seconds() -> None:
    schedule = parse_cron("*/5 * * * * *", with_seconds=True)
    assert ticks_between(schedule, utc(2024, 1, 1), utc(2024, 1, 1, 0, 0, 20)) == [
        utc(2024, 1, 1, 0, 0, s) for s in (5, 10, 15, 20)]


def test_seconds_field_is_the_first_of_six() -> None:
    # second=30 minute=0: half a minute past every hour, not minute 30.
    schedule = parse_cron("30 0 * * * *", with_seconds=True)
    assert next_after(schedule, utc(2024, 1, 1, 0, 5)) == utc(2024, 1, 1, 1, 0, 30)


@pytest.mark.parametrize(("nickname", "expected"), [
    ("@yearly", utc(2025, 1, 1)),
    ("@annually", utc(2025, 1, 1)),
    ("@monthly", utc(2024, 7, 1)),
    ("@weekly", utc(2024, 6, 16)),  # 2024-06-16 is a Sunday
    ("@daily", utc(2024, 6, 13)),
    ("@midnight", utc(2024, 6, 13)),
    ("@hourly", utc(2024, 6, 12, 11)),
])
def test_nicknames_follow_kestra(nickname: str, expected: datetime) -> None:
    assert next_after(parse_cron(nickname), utc(2024, 6, 12, 10, 30)) == expected
    with_seconds = parse_cron(nickname.upper(), with_seconds=True)
    assert next_after(with_seconds, utc(2024, 6, 12, 10, 30)) == expected


def test_sunday_is_both_zero_and_seven() -> None:
    after = utc(2024, 6, 12)
    assert next_after(parse_cron("0 0 * * 7"), after) == next_after(parse_cron("0 0 * * 0"),
                                                                    after)


def test_schedule_survives_pickling_for_worker_processes() -> None:
    schedule = parse_cron("0 9 * * MON-FRI", timezone=PARIS)
    clone = pickle.loads(pickle.dumps(schedule))
    assert clone == schedule
    assert next_after(clone, utc(2024, 6, 12)) == utc(2024, 6, 12, 7)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_after(parse_cron("* * * * *"), datetime(2024, 1, 1))


# --- timezones and DST ----------------------------------------------------------


def test_timezone_evaluates_in_local_time_and_returns_utc() -> None:
    schedule = parse_cron("0 9 * * *", timezone="America/New_York")
    tick = next_after(schedule, utc(2024, 7, 1))
    assert tick == utc(2024, 7, 1, 13)
    assert tick.tzinfo is UTC


def test_daily_in_skipped_hour_fires_once_at_the_transition() -> None:
    # 2024-03-31 Paris: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
    # Like cron, a fixed-time job in the gap runs once, right after the jump.
    schedule = parse_cron("30 2 * * *", timezone=PARIS)
    ticks = ticks_between(schedule, utc(2024, 3, 29), utc(2024, 4, 2))
    assert [local(schedule, t) for t in ticks] == [
        "2024-03-29 02:30:00+0100",
        "2024-03-30 02:30:00+0100",
        "2024-03-31 03:00:00+0200",
        "2024-04-01 02:30:00+0200",
    ]


def test_daily_in_repeated_hour_fires_once_not_twice() -> None:
    # 2024-10-27 Paris: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    schedule = parse_cron("30 2 * * *", timezone=PARIS)
    ticks = ticks_between(schedule, utc(2024, 10, 25), utc(2024, 10, 29))
    assert [local(schedule, t) for t in ticks] == [
        "2024-10-25 02:30:00+0200",
        "2024-10-26 02:30:00+0200",
        "2024-10-27 02:30:00+0200",
        "2024-10-28 02:30:00+0100",
    ]


def test_hourly_across_fall_back_fires_every_real_hour() -> None:
    schedule = parse_cron("@hourly", timezone=PARIS)
    ticks = ticks_between(schedule, utc(2024, 10, 26, 22), utc(2024, 10, 27, 4))
    assert ticks == [utc(2024, 10, 26, 23) + timedelta(hours=h) for h in range(6)]
    assert [local(schedule, t)[11:] for t in ticks[:4]] == [
        "01:00:00+0200", "02:00:00+0200", "02:00:00+0100", "03:00:00+0100"]


def test_hourly_across_spring_forward_fires_every_real_hour() -> None:
    schedule = parse_cron("0 * * * *", timezone=PARIS)
    ticks = ticks_between(schedule, utc(2024, 3, 30, 23), utc(2024, 3, 31, 3))
    assert ticks == [utc(2024, 3, 31, h) for h in range(4)]


def test_several_fixed_ticks_in_the_gap_collapse_into_one() -> None:
    schedule = parse_cron("0,20,40 2 * * *", timezone=PARIS)
    ticks = ticks_between(schedule, utc(2024, 3, 30, 12), utc(2024, 3, 31, 12))
    assert ticks == [utc(2024, 3, 31, 1)]


def test_half_hour_dst_shift_of_lord_howe() -> None:
    # Australia/Lord_Howe moves by 30 minutes: 02:00 -> 01:30 on 2024-04-07.
    schedule = parse_cron("45 1 * * *", timezone="Australia/Lord_Howe")
    ticks = ticks_between(schedule, utc(2024, 4, 5), utc(2024, 4, 8))
    assert len(ticks) == 3
    assert [local(schedule, t)[11:16] for t in ticks] == ["01:45"] * 3


def test_previous_before_steps_back_across_fall_back() -> None:
    schedule = parse_cron("@hourly", timezone=PARIS)
    assert previous_before(schedule, utc(2024, 10, 27, 2)) == utc(2024, 10, 27, 1)
    assert previous_before(schedule, utc(2024, 10, 27, 1)) == utc(2024, 10, 27, 0)
    daily = parse_cron("30 2 * * *", timezone=PARIS)
    assert previous_before(daily, utc(2024, 10, 28)) == utc(2024, 10, 27, 0, 30)
    assert previous_before(daily, utc(2024, 4, 1)) == utc(2024, 3, 31, 1)


# --- recovery --------------------------------------------------------------------


def test_missed_ticks_per_policy() -> None:
    schedule = parse_cron("*/1 * * * * *", with_seconds=True)
    last, now = utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 1, 0, 0, 5)
    assert missed_ticks(schedule, last, now, "ALL") == [utc(2024, 1, 1, 0, 0, s)
                                                         for s in range(1, 6)]
    assert missed_ticks(schedule, last, now, "LAST") == [now]
    assert missed_ticks(schedule, last, now, "NONE") == []
    assert missed_ticks(schedule, last, now, "ALL", limit=2) == [utc(2024, 1, 1, 0, 0, 1),
                                                                  utc(2024, 1, 1, 0, 0, 2)]


def test_nothing_is_missed_when_up_to_date_or_never_fired() -> None:
    schedule = parse_cron("0 * * * *")
    now = utc(2024, 1, 1, 10, 30)
    assert missed_ticks(schedule, utc(2024, 1, 1, 10), now, "ALL") == []
    assert missed_ticks(schedule, utc(2024, 1, 1, 10), now, "LAST") == []
    assert missed_ticks(schedule, None, now, "ALL") == []


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="one of ALL, LAST, NONE, found 'SOME'"):
        missed_ticks(parse_cron("* * * * *"), None, utc(2024, 1, 1), "SOME")


# --- properties ------------------------------------------------------------------

ZONES = ["UTC", PARIS, "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "Asia/Tehran", "Pacific/Chatham", "Asia/Kolkata"]
MINUTES = ["*", "0", "30", "*/15", "5,45", "0-10", "59"]
HOURS = ["*", "2", "1-3", "*/2", "0", "23", "2,3", "*/6"]
DAYS = ["*", "*", "1", "MON-FRI", "SUN"]

expressions = st.builds(
    lambda m, h, d: f"{m} {h} * * {d}" if d != "1" else f"{m} {h} 1 * *",
    st.sampled_from(MINUTES), st.sampled_from(HOURS), st.sampled_from(DAYS))
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31),
                        timezones=st.just(UTC))
# Days with DST transitions in many of the zones above, to aim at the hard cases.
transition_days = st.sampled_from([
    utc(2024, 3, 30), utc(2024, 3, 9), utc(2024, 10, 26), utc(2024, 11, 2),
    utc(2024, 4, 6), utc(2024, 10, 5), utc(2024, 9, 6), utc(2024, 9, 28), utc(2024, 4, 5),
    utc(2022, 3, 21), utc(2022, 9, 21)])
near_transitions = st.builds(lambda day, minutes: day + timedelta(minutes=minutes),
                             transition_days, st.integers(0, 3 * 24 * 60))
moments = st.one_of(instants, near_transitions)


@settings(max_examples=150, deadline=None)
@given(expressions, st.sampled_from(ZONES), moments)
def test_next_after_is_after_and_previous_before_is_before(expression: str, zone: str,
                                                          moment: datetime) -> None:
    schedule = parse_cron(expression, timezone=zone)
    nxt = next_after(schedule, moment)
    prev = previous_before(schedule, moment)
    assert prev < moment < nxt
    assert nxt.tzinfo is UTC and prev.tzinfo is UTC
    # No tick hides between moment and the answers.
    assert previous_before(schedule, nxt) <= moment
    assert next_after(schedule, prev) >= moment


@settings(max_examples=100, deadline=None)
@given(expressions, st.sampled_from(ZONES), moments, st.integers(1, 6 * 3600))
def test_next_after_is_monotonic(expression: str, zone: str, moment: datetime,
                                 gap: int) -> None:
    schedule = parse_cron(expression, timezone=zone)
    later = moment + timedelta(seconds=gap)
    assert next_after(schedule, moment) <= next_after(schedule, later)


def wall_matcher(schedule: CronSchedule) -> Callable[[datetime], bool]:
    """A plain re-implementation of cron field matching, independent of the
    code under test (croniter.match is correct but too slow to call 4,000 times)."""
    fields = croniter(schedule.normalized).expanded
    minutes, hours, days, months, weekdays = ({v for v in f if v != "*"} or None
                                              for f in fields[:5])

    def match(wall: datetime) -> bool:
        if minutes is not None and wall.minute not in minutes:
            return False
        if hours is not None and wall.hour not in hours:
            return False
        if months is not None and wall.month not in months:
            return False
        day_ok = days is None or wall.day in days
        weekday_ok = weekdays is None or wall.isoweekday() % 7 in weekdays
        if days is not None and weekdays is not None:
            return day_ok or weekday_ok  # cron ORs day-of-month and day-of-week
        return day_ok and weekday_ok

    return match


@settings(max_examples=60, deadline=None)
@given(expressions, st.sampled_from(ZONES), transition_days)
def test_ticks_match_a_minute_by_minute_oracle(expression: str, zone: str,
                                               day: datetime) -> None:
    """Walk every real minute over 3 days and apply cron's DST rules by hand."""
    schedule = parse_cron(expression, timezone=zone)
    matches = wall_matcher(schedule)
    tz = ZoneInfo(zone)
    start, end = day, day + timedelta(days=3)
    expected: set[datetime] = set()
    previous_wall: datetime | None = None
    instant = start + timedelta(minutes=1)
    while instant <= end:
        local_time = instant.astimezone(tz)
        wall = local_time.replace(tzinfo=None, fold=0)
        if matches(wall) and (schedule.hourly_or_finer or local_time.fold == 0):
            expected.add(instant)
        if previous_wall is not None and wall - previous_wall > timedelta(minutes=1):
            skipped = previous_wall + timedelta(minutes=1)
            while skipped < wall:  # wall-clock minutes a spring-forward jumped over
                if not schedule.hourly_or_finer and matches(skipped):
                    expected.add(instant)
                skipped += timedelta(minutes=1)
        previous_wall = wall
        instant += timedelta(minutes=1)
    ticks = ticks_between(schedule, start, end)
    assert ticks == sorted(expected)
    assert len(set(ticks)) == len(ticks)
