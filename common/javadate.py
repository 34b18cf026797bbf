"""Java DateTimeFormatter patterns (what Kestra's `date` filter takes) applied to
Python datetimes, plus Kestra's predefined format names ("iso", "sql", ...)."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

_MONTHS = list(calendar.month_name)
_MONTHS_SHORT = list(calendar.month_abbr)
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Letters DateTimeFormatter reserves; every one we do not implement is refused
# by name rather than printed literally (Java would fail too, or mean something else).
_LETTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_RESERVED = set("#{}")


def _english_ordinal_quarter(q: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd", 4: "4th"}[q] + " quarter"


def _number(value: int, count: int, max_count: int = 2) -> str:
    if count > max_count:
        raise ValueError(f"too many pattern letters ({count})")
    return str(value).zfill(count)


def _year(dt: datetime, count: int) -> str:
    if count == 2:
        return f"{dt.year % 100:02d}"
    return str(dt.year).zfill(count)


def _offset_seconds(dt: datetime) -> int:
    offset = dt.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _offset_text(seconds: int, *, colon: bool, with_minutes: str, zero: str | None) -> str:
    """with_minutes: 'always', 'if-nonzero'; zero: text for a zero offset or None."""
    if seconds == 0 and zero is not None:
        return zero
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    sep = ":" if colon else ""
    out = f"{sign}{hours:02d}"
    if with_minutes == "always" or minutes or secs:
        out += f"{sep}{minutes:02d}"
    if secs:
        out += f"{sep}{secs:02d}"
    return out


def _offset_x(dt: datetime, count: int, zero: str | None) -> str:
    seconds = _offset_seconds(dt)
    if count == 1:
        return _offset_text(seconds, colon=False, with_minutes="if-nonzero", zero=zero)
    if count in (2, 4):
        return _offset_text(seconds, colon=False, with_minutes="always", zero=zero)
    if count in (3, 5):
        return _offset_text(seconds, colon=True, with_minutes="always", zero=zero)
    raise ValueError(f"too many pattern letters ({count})")


def _offset_z(dt: datetime, count: int) -> str:
    seconds = _offset_seconds(dt)
    if count <= 3:
        return _offset_text(seconds, colon=False, with_minutes="always", zero=None)
    if count == 4:
        if seconds == 0:
            return "GMT"
        return "GMT" + _offset_text(seconds, colon=True, with_minutes="always", zero=None)
    if count == 5:
        return _offset_text(seconds, colon=True, with_minutes="always", zero="Z")
    raise ValueError(f"too many pattern letters ({count})")


def _offset_o(dt: datetime, count: int) -> str:
    seconds = _offset_seconds(dt)
    if seconds == 0:
        return "GMT"
    if count == 1:
        sign = "-" if seconds < 0 else "+"
        hours, rest = divmod(abs(seconds), 3600)
        minutes = rest // 60
        return f"GMT{sign}{hours}" + (f":{minutes:02d}" if minutes else "")
    if count == 4:
        return "GMT" + _offset_text(seconds, colon=True, with_minutes="always", zero=None)
    raise ValueError("pattern letter O must appear 1 or 4 times")


def _zone_id(dt: datetime) -> str:
    tz = dt.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz.key
    return _offset_text(_offset_seconds(dt), colon=True, with_minutes="always", zero="Z")


def _zone_name(dt: datetime, count: int) -> str:
    if count == 4 and isinstance(dt.tzinfo, ZoneInfo):
        return dt.tzinfo.key
    return dt.tzname() or _zone_id(dt)


def _fraction(dt: datetime, count: int) -> str:
    if count > 9:
        raise ValueError(f"too many pattern letters ({count})")
    return (f"{dt.microsecond:06d}" + "000")[:count]


def _text(full: list[str], short: list[str], index: int, count: int) -> str:
    if count <= 3:
        return short[index]
    if count == 4:
        return full[index]
    if count == 5:
        return full[index][0]
    raise ValueError(f"too many pattern letters ({count})")


def _month(dt: datetime, count: int) -> str:
    if count <= 2:
        return _number(dt.month, count)
    return _text(_MONTHS, _MONTHS_SHORT, dt.month, count)


def _weekday(dt: datetime, count: int) -> str:
    return _text(_DAYS, [d[:3] for d in _DAYS], dt.weekday(), count)


def _local_weekday(dt: datetime, count: int) -> str:
    if count <= 2:
        return _number(dt.isoweekday(), count)
    return _weekday(dt, count)


def _quarter(dt: datetime, count: int) -> str:
    q = (dt.month - 1) // 3 + 1
    if count <= 2:
        return _number(q, count)
    if count == 3:
        return f"Q{q}"
    if count == 4:
        return _english_ordinal_quarter(q)
    if count == 5:
        return str(q)
    raise ValueError(f"too many pattern letters ({count})")


def _hour12(dt: datetime) -> int:
    return dt.hour % 12 or 12


def _day_of_year(dt: datetime, count: int) -> str:
    return _number(dt.timetuple().tm_yday, count, max_count=3)


def _week_year(dt: datetime, count: int) -> str:
    year = dt.isocalendar().year
    return f"{year % 100:02d}" if count == 2 else str(year).zfill(count)


def _era(dt: datetime, count: int) -> str:
    return "Anno Domini" if count == 4 else ("A" if count == 5 else "AD")


_Field = Callable[[datetime, int], str]

# Week fields follow ISO-8601 (weeks start on Monday, week 1 holds the first
# Thursday): Java's `w`/`Y` depend on the JVM's locale, ISO is the predictable choice.
_FIELDS: dict[str, _Field] = {
    "G": _era,
    "y": _year,
    "u": _year,
    "Y": _week_year,
    "M": _month,
    "L": _month,
    "Q": _quarter,
    "q": _quarter,
    "w": lambda dt, n: _number(dt.isocalendar().week, n),
    "D": _day_of_year,
    "d": lambda dt, n: _number(dt.day, n),
    "E": _weekday,
    "e": _local_weekday,
    "c": _local_weekday,
    "a": lambda dt, n: ("AM" if dt.hour < 12 else "PM") if n == 1 else _bad_count("a", n),
    "H": lambda dt, n: _number(dt.hour, n),
    "k": lambda dt, n: _number(dt.hour or 24, n),
    "K": lambda dt, n: _number(dt.hour % 12, n),
    "h": lambda dt, n: _number(_hour12(dt), n),
    "m": lambda dt, n: _number(dt.minute, n),
    "s": lambda dt, n: _number(dt.second, n),
    "S": _fraction,
    "n": lambda dt, n: str(dt.microsecond * 1000).zfill(n),
    "A": lambda dt, n: str(
        ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1000 + dt.microsecond // 1000
    ).zfill(n),
    "N": lambda dt, n: str(
        ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1_000_000_000 + dt.microsecond * 1000
    ).zfill(n),
    "V": lambda dt, n: _zone_id(dt) if n == 2 else _bad_count("V", n),
    "z": _zone_name,
    "O": _offset_o,
    "X": lambda dt, n: _offset_x(dt, n, "Z"),
    "x": lambda dt, n: _offset_x(dt, n, None),
    "Z": _offset_z,
}


def _bad_count(letter: str, count: int) -> str:
    raise ValueError(f"pattern letter {letter!r} cannot appear {count} times")


@dataclass(frozen=True)
class _Literal:
    text: str


@dataclass(frozen=True)
class _Letter:
    letter: str
    count: int


_Token = _Literal | _Letter


def _tokenize(pattern: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = i + 1
            text = ""
            while True:
                if end >= len(pattern):
                    raise ValueError(f"pattern {pattern!r} has an unclosed quote")
                if pattern[end] == "'":
                    if end + 1 < len(pattern) and pattern[end + 1] == "'":
                        text += "'"
                        end += 2
                        continue
                    break
                text += pattern[end]
                end += 1
            # '' outside a quoted run is a literal single quote
            tokens.append(_Literal(text if end > i + 1 else "'"))
            i = end + 1
        elif ch in _LETTERS:
            end = i
            while end < len(pattern) and pattern[end] == ch:
                end += 1
            if ch not in _FIELDS:
                raise ValueError(
                    f"unknown pattern letter {ch!r} in date pattern {pattern!r}"
                )
            tokens.append(_Letter(ch, end - i))
            i = end
        elif ch in _RESERVED:
            raise ValueError(f"date pattern {pattern!r} uses the reserved character {ch!r}")
        elif ch in "[]":
            # Optional sections: when formatting every field we have is present,
            # so the section's contents are always printed.
            i += 1
        else:
            tokens.append(_Literal(ch))
            i += 1
    return tokens


def _iso_instant(dt: datetime) -> str:
    utc = dt.astimezone(UTC)
    text = f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S")  # %Y does not pad years < 1000
    micro = utc.microsecond
    if micro:
        text += "." + (f"{micro // 1000:03d}" if micro % 1000 == 0 else f"{micro:06d}")
    return text + "Z"


def _iso_time_fraction(dt: datetime) -> str:
    micro = dt.microsecond
    text = dt.strftime("%H:%M:%S")
    if micro:
        text += "." + (f"{micro // 1000:03d}" if micro % 1000 == 0 else f"{micro:06d}")
    return text


def _iso_offset(dt: datetime) -> str:
    return _offset_x(dt, 5, "Z")


def _zone_suffix(dt: datetime) -> str:
    return f"[{dt.tzinfo.key}]" if isinstance(dt.tzinfo, ZoneInfo) else ""


def _rfc_1123(dt: datetime) -> str:
    offset = _offset_text(_offset_seconds(dt), colon=False, with_minutes="always", zero="GMT")
    return (
        f"{_DAYS[dt.weekday()][:3]}, {dt.day} {_MONTHS_SHORT[dt.month]} {dt.year} "
        f"{dt.strftime('%H:%M:%S')} {offset}"
    )


# Kestra's AbstractDate names (io.kestra.core.runners.pebble.AbstractDate);
# matched case-insensitively so java's constant names (ISO_OFFSET_DATE_TIME) work too.
_NAMED: dict[str, Callable[[datetime], str]] = {
    "iso": lambda dt: format_java(dt, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"),
    "iso_sec": lambda dt: format_java(dt, "yyyy-MM-dd'T'HH:mm:ssXXX"),
    "iso_milli": lambda dt: format_java(dt, "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
    "sql": lambda dt: format_java(dt, "yyyy-MM-dd HH:mm:ss.SSSSSS"),
    "sql_seq": lambda dt: format_java(dt, "yyyy-MM-dd HH:mm:ss"),
    "sql_sec": lambda dt: format_java(dt, "yyyy-MM-dd HH:mm:ss"),
    "iso_date_time": lambda dt: (
        f"{dt.date().isoformat()}T{_iso_time_fraction(dt)}{_iso_offset(dt)}{_zone_suffix(dt)}"
    ),
    "iso_zoned_date_time": lambda dt: (
        f"{dt.date().isoformat()}T{_iso_time_fraction(dt)}{_iso_offset(dt)}{_zone_suffix(dt)}"
    ),
    "iso_offset_date_time": lambda dt: (
        f"{dt.date().isoformat()}T{_iso_time_fraction(dt)}{_iso_offset(dt)}"
    ),
    "iso_local_date_time": lambda dt: f"{dt.date().isoformat()}T{_iso_time_fraction(dt)}",
    "iso_date": lambda dt: dt.date().isoformat() + _iso_offset(dt),
    "iso_offset_date": lambda dt: dt.date().isoformat() + _iso_offset(dt),
    "iso_local_date": lambda dt: dt.date().isoformat(),
    "iso_time": lambda dt: _iso_time_fraction(dt) + _iso_offset(dt),
    "iso_offset_time": lambda dt: _iso_time_fraction(dt) + _iso_offset(dt),
    "iso_local_time": _iso_time_fraction,
    "iso_instant": _iso_instant,
    "iso_ordinal_date": lambda dt: format_java(dt, "yyyy-DDDXXX"),
    "iso_week_date": lambda dt: (
        f"{dt.isocalendar().year}-W{dt.isocalendar().week:02d}-{dt.isoweekday()}"
        + _iso_offset(dt)
    ),
    "basic_iso_date": lambda dt: format_java(dt, "yyyyMMddXX"),
    "rfc_1123_date_time": _rfc_1123,
}

NAMED_FORMATS: frozenset[str] = frozenset(_NAMED)


def format_java(dt: datetime | date, pattern: str) -> str:
    """Format `dt` with a Java DateTimeFormatter pattern or a Kestra format name.

    Naive datetimes are taken as UTC; a `date` is taken as midnight UTC. Names
    print in English (Kestra's default locale). Raises ValueError naming the
    letter for pattern letters Java does not define or we do not implement.
    """
    if not isinstance(dt, datetime):
        if isinstance(dt, date):
            dt = datetime(dt.year, dt.month, dt.day, tzinfo=UTC)
        else:
            raise ValueError(f"cannot format {type(dt).__name__} {dt!r} as a date")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    named = _NAMED.get(pattern.lower())
    if named is not None:
        return named(dt)
    out: list[str] = []
    for token in _tokenize(pattern):
        if isinstance(token, _Literal):
            out.append(token.text)
            continue
        try:
            out.append(_FIELDS[token.letter](dt, token.count))
        except ValueError as exc:
            raise ValueError(
                f"date pattern {pattern!r}, letter {token.letter!r}: {exc}"
            ) from exc
    return "".join(out)


def zone(name: str | None) -> tzinfo:
    """A time zone from an id Kestra accepts (Europe/Paris, UTC, Z, +02:00)."""
    if name is None or name in ("Z", "UTC", "GMT"):
        return UTC
    if name[:1] in "+-" or name.upper().startswith(("UTC+", "UTC-", "GMT+", "GMT-")):
        text = name[3:] if name[:1] not in "+-" else name
        sign = -1 if text[0] == "-" else 1
        body = text[1:].replace(":", "")
        try:
            hours = int(body[:2] if len(body) > 2 else body)
            minutes = int(body[2:4]) if len(body) > 2 else 0
        except ValueError as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (e.g. UTC, Europe/Paris)") from exc


_STRPTIME: dict[str, Callable[[int], str]] = {
    "y": lambda n: "%y" if n == 2 else "%Y",
    "u": lambda n: "%y" if n == 2 else "%Y",
    "M": lambda n: "%m" if n <= 2 else ("%b" if n == 3 else "%B"),
    "L": lambda n: "%m" if n <= 2 else ("%b" if n == 3 else "%B"),
    "d": lambda n: "%d",
    "D": lambda n: "%j",
    "H": lambda n: "%H",
    "h": lambda n: "%I",
    "m": lambda n: "%M",
    "s": lambda n: "%S",
    "S": lambda n: "%f",
    "a": lambda n: "%p",
    "E": lambda n: "%A" if n == 4 else "%a",
    "X": lambda n: "%z",
    "x": lambda n: "%z",
    "Z": lambda n: "%z",
}


def parse_java(text: str, pattern: str) -> datetime:
    """Parse `text` with a Java pattern (Kestra's `existingFormat`), for the
    numeric and English-name fields; naive when the pattern has no offset."""
    if pattern.lower() in _NAMED:
        return datetime.fromisoformat(text.strip())
    parts: list[str] = []
    for token in _tokenize(pattern):
        if isinstance(token, _Literal):
            parts.append(token.text.replace("%", "%%"))
        elif token.letter in _STRPTIME:
            parts.append(_STRPTIME[token.letter](token.count))
        else:
            raise ValueError(f"pattern letter {token.letter!r} cannot be used to parse dates")
    return datetime.strptime(text, "".join(parts))
