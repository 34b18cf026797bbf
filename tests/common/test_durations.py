from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harrier.common.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT5M", timedelta(minutes=5)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT0,25S", timedelta(milliseconds=250)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0S", timedelta(0)),
        ("pt5m", timedelta(minutes=5)),
        ("-PT5M", timedelta(minutes=-5)),
        ("PT-5M", timedelta(minutes=-5)),
        ("-PT-6H+3M", timedelta(hours=6, minutes=-3)),
        ("PT36H", timedelta(hours=36)),
        ("PT0.000000999S", timedelta(0)),
        (" PT10S ", timedelta(seconds=10)),
    ],
)
def test_parses_java_duration_strings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["five minutes", "", "P", "PT", "P1DT", "5M", "PT5", "PT1.5M", "PT5M3H", "1h"]
)
def test_rejects_text_that_is_not_a_duration_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not an ISO-8601 duration \(e\.g\. PT5M\)") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text", ["P1Y", "P2M", "P1W", "P1Y2M3DT4H", "-P1M"])
def test_refuses_years_months_and_weeks_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="no fixed length"):
        parse_duration(text)


def test_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="not an ISO-8601 duration"):
        parse_duration(300)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=5), "PT5M"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(milliseconds=500), "PT0.5S"),
        (timedelta(days=1), "PT24H"),
        (timedelta(0), "PT0S"),
        (timedelta(minutes=-5), "PT-5M"),
        (timedelta(seconds=-90.5), "PT-1M-30.5S"),
        (timedelta(seconds=-0.5), "PT-0.5S"),
        (timedelta(hours=2, seconds=1, microseconds=1), "PT2H1.000001S"),
    ],
)
def test_formats_like_java_duration_to_string(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.timedeltas(min_value=timedelta(days=-10**6), max_value=timedelta(days=10**6)))
def test_format_then_parse_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@given(st.integers(0, 10**6), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_parse_then_format_is_canonical(days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"P{days}DT{hours}H{minutes}M{seconds}S"
    value = parse_duration(text)
    assert value == timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    assert parse_duration(format_duration(value)) == value
