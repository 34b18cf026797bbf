from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harrier.common.javadate import NAMED_FORMATS, format_java, parse_java, zone

START = datetime(2024, 1, 31, 10, 5, 9, 123456, tzinfo=UTC)
PARIS = START.astimezone(ZoneInfo("Europe/Paris"))  # 11:05:09.123456+01:00
EVENING = datetime(2024, 7, 4, 21, 7, 3, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy/MM/dd", "2024/01/31"),
        ("yyyy-MM-dd", "2024-01-31"),
        ("yy", "24"),
        ("M/d", "1/31"),
        ("MMM MMMM", "Jan January"),
        ("MMMMM", "J"),
        ("HH:mm:ss", "10:05:09"),
        ("H", "10"),
        ("hh h a", "10 10 AM"),
        ("SSS", "123"),
        ("S", "1"),
        ("SSSSSS", "123456"),
        ("SSSSSSSSS", "123456000"),
        ("E EEE EEEE", "Wed Wed Wednesday"),
        ("D DDD", "31 031"),
        ("w", "5"),
        ("Z", "+0000"),
        ("ZZZZZ", "Z"),
        ("X XX XXX", "Z Z Z"),
        ("x xxx", "+00 +00:00"),
        ("z", "UTC"),
        ("Q QQQ", "1 Q1"),
        ("k K", "10 10"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2024-01-31T10:05:09.123Z"),
        ("'o''clock' h", "o'clock 10"),
        ("''", "'"),
        ("yyyyMMdd_HHmm", "20240131_1005"),
        ("[yyyy]", "2024"),
        ("G", "AD"),
    ],
)
def test_formats_java_pattern_letters(pattern: str, expected: str) -> None:
    assert format_java(START, pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("HH:mm XXX", "11:05 +01:00"),
        ("Z", "+0100"),
        ("ZZZZ", "GMT+01:00"),
        ("X", "+01"),
        ("z", "CET"),
        ("zzzz VV", "Europe/Paris Europe/Paris"),
        ("O", "GMT+1"),
    ],
)
def test_formats_zones_and_offsets(pattern: str, expected: str) -> None:
    assert format_java(PARIS, pattern) == expected


def test_afternoon_and_odd_offsets() -> None:
    assert format_java(EVENING, "hh:mm a") == "09:07 PM"
    assert format_java(EVENING, "X") == "-0530"
    assert format_java(EVENING, "XXX") == "-05:30"
    assert format_java(EVENING, "EEEE d MMMM") == "Thursday 4 July"


def test_midnight_and_noon_on_the_twelve_hour_clock() -> None:
    assert format_java(datetime(2024, 1, 1, 0, 30, tzinfo=UTC), "h a") == "12 AM"
    assert format_java(datetime(2024, 1, 1, 12, 30, tzinfo=UTC), "h a K") == "12 PM 0"
    assert format_java(datetime(2024, 1, 1, 0, 30, tzinfo=UTC), "k") == "24"


@pytest.mark.parametrize("letter", ["b", "f", "g", "i", "j", "l", "o", "p", "r", "t", "v", "B"])
def test_unknown_letters_are_refused_by_name(letter: str) -> None:
    with pytest.raises(ValueError, match=f"unknown pattern letter '{letter}'"):
        format_java(START, f"yyyy{letter}")


@pytest.mark.parametrize("pattern", ["yyyy'T", "dd#", "{yyyy}", "MMMMMM", "ddd", "aa"])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        format_java(START, pattern)


def test_kestra_named_formats() -> None:
    assert format_java(START, "iso") == "2024-01-31T10:05:09.123456Z"
    assert format_java(START, "iso_sec") == "2024-01-31T10:05:09Z"
    assert format_java(START, "sql") == "2024-01-31 10:05:09.123456"
    assert format_java(START, "ISO_OFFSET_DATE_TIME") == "2024-01-31T10:05:09.123456Z"
    assert format_java(PARIS, "iso_zoned_date_time") == (
        "2024-01-31T11:05:09.123456+01:00[Europe/Paris]")
    assert format_java(PARIS, "iso_instant") == "2024-01-31T10:05:09.123456Z"
    assert format_java(START, "iso_local_date") == "2024-01-31"
    assert format_java(START, "iso_week_date") == "2024-W05-3Z"
    assert format_java(START, "rfc_1123_date_time") == "Wed, 31 Jan 2024 10:05:09 GMT"
    assert "iso" in NAMED_FORMATS


def test_naive_datetimes_and_dates_are_taken_as_utc() -> None:
    assert format_java(datetime(2024, 1, 31, 10), "HH XXX") == "10 Z"
    assert format_java(date(2024, 1, 31), "yyyy-MM-dd HH:mm") == "2024-01-31 00:00"


def test_zone_accepts_ids_and_offsets() -> None:
    assert zone(None) is UTC
    assert zone("UTC") is UTC
    assert zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert zone("+02:00") == timezone(timedelta(hours=2))
    assert zone("-0530") == timezone(-timedelta(hours=5, minutes=30))
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


def test_parse_java_reads_existing_formats() -> None:
    assert parse_java("2024/01/31 10:05", "yyyy/MM/dd HH:mm") == datetime(2024, 1, 31, 10, 5)
    assert parse_java("31-Jan-2024", "dd-MMM-yyyy") == datetime(2024, 1, 31)
    parsed = parse_java("2024-01-31T10:05:09+01:00", "yyyy-MM-dd'T'HH:mm:ssXXX")
    assert parsed.utcoffset() == timedelta(hours=1)


aware = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31),
    timezones=st.sampled_from([UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York"),
                               timezone(timedelta(hours=5, minutes=45))]),
)


@given(aware)
def test_numeric_patterns_agree_with_strftime(dt: datetime) -> None:
    assert format_java(dt, "yyyy-MM-dd") == dt.date().isoformat()
    assert format_java(dt, "HH:mm:ss") == dt.strftime("%H:%M:%S")
    assert format_java(dt, "yyyyMMddHHmmss") == f"{dt.year:04d}" + dt.strftime("%m%d%H%M%S")
    assert format_java(dt, "hh a") == dt.strftime("%I %p")
    assert format_java(dt, "EEE EEEE MMM MMMM") == dt.strftime("%a %A %b %B")
    assert format_java(dt, "DDD") == dt.strftime("%j")
    assert format_java(dt, "Z") == dt.strftime("%z")
    assert format_java(dt, "SSSSSS") == f"{dt.microsecond:06d}"


@given(aware)
def test_iso_named_format_parses_back_to_the_same_instant(dt: datetime) -> None:
    # compare instants: PEP 495 makes datetimes in a DST gap unequal across zones
    assert datetime.fromisoformat(format_java(dt, "iso")).timestamp() == dt.timestamp()
    parsed = parse_java(format_java(dt, "yyyy-MM-dd HH:mm:ss.SSSSSSXXX"),
                        "yyyy-MM-dd HH:mm:ss.SSSSSSXXX")
    assert parsed.timestamp() == dt.timestamp()
