"""ISO-8601 durations as Kestra (java.time.Duration) reads and writes them:
PT5M, PT1H30M, PT0.5S, P1D, P1DT2H; years, months and weeks are refused."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation

# Java's Duration.parse grammar: an optional sign, P, optional days, then an
# optional T part; each number may carry its own sign; only seconds may have a
# fraction (. or ,); letters in either case.
_DURATION = re.compile(
    r"""
    (?P<sign>[-+]?)P
    (?:(?P<days>[-+]?\d+)D)?
    (?:T
        (?:(?P<hours>[-+]?\d+)H)?
        (?:(?P<minutes>[-+]?\d+)M)?
        (?:(?P<seconds>[-+]?\d+(?:[.,]\d{0,9})?)S)?
    )?
    """,
    re.VERBOSE | re.IGNORECASE,
)
_CALENDAR = re.compile(r"[-+]?P(?:[-+]?\d+[YMW])", re.IGNORECASE)
_MICRO = Decimal("0.000001")


def _not_a_duration(text: str) -> ValueError:
    return ValueError(f"{text!r} is not an ISO-8601 duration (e.g. PT5M)")


def parse_duration(text: str) -> timedelta:
    """Parse `text` the way java.time.Duration.parse does; microsecond precision
    (digits beyond the sixth are truncated toward zero)."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an ISO-8601 duration (e.g. PT5M)")
    stripped = text.strip()
    if _CALENDAR.match(stripped):
        raise ValueError(
            f"{text!r}: years, months and weeks have no fixed length; "
            "write the duration in days or hours (e.g. P30D, PT12H)"
        )
    match = _DURATION.fullmatch(stripped)
    if match is None or stripped.upper().endswith("T"):
        raise _not_a_duration(text)
    parts = match.group("days", "hours", "minutes", "seconds")
    if all(part is None for part in parts):
        raise _not_a_duration(text)
    days, hours, minutes, seconds = parts
    try:
        total = (
            Decimal(int(days or 0)) * 86400
            + Decimal(int(hours or 0)) * 3600
            + Decimal(int(minutes or 0)) * 60
            + Decimal((seconds or "0").replace(",", "."))
        )
    except InvalidOperation as exc:  # unreachable with the regex above, kept for safety
        raise _not_a_duration(text) from exc
    if match.group("sign") == "-":
        total = -total
    micros = int((total / _MICRO).to_integral_value(rounding=ROUND_DOWN))
    try:
        return timedelta(microseconds=micros)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is too long a duration") from exc


def format_duration(value: timedelta) -> str:
    """The canonical form java.time.Duration.toString gives: hours, minutes and
    seconds only (P1D -> PT24H), zero is PT0S, negatives sign each part (PT-1M-30S)."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "PT0S"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    whole, fraction = divmod(micros, 1_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{sign}{hours}H"
    if minutes:
        out += f"{sign}{minutes}M"
    if seconds or fraction:
        out += f"{sign}{seconds}"
        if fraction:
            out += "." + f"{fraction:06d}".rstrip("0")
        out += "S"
    return out
